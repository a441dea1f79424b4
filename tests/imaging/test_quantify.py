"""Quantification from the true labels reproduces the phantom's truth: the measurement itself
(disc positions, slice interpolation, Rician-corrected fat fraction) without segmentation error."""
import nibabel as nib
import numpy as np

from imaging.labels import DEFAULT_VERTEBRA_LABELS
from imaging.levels import levels_from_vertebrae
from imaging.quantify import quantify


def canonical(phantom, array):
    return np.asarray(nib.as_closest_canonical(nib.Nifti1Image(array, phantom.affine)).dataobj)


def test_true_labels_give_true_morphometry(accuracy_phantoms):
    worst_csa, worst_ff = 0.0, 0.0
    for ph in accuracy_phantoms:
        affine = nib.as_closest_canonical(nib.Nifti1Image(ph.water, ph.affine)).affine
        levels = levels_from_vertebrae(canonical(ph, ph.vertebrae), DEFAULT_VERTEBRA_LABELS)
        assert levels.found == ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")
        measured = quantify(canonical(ph, ph.labels), canonical(ph, ph.water), canonical(ph, ph.fat), affine,
                            levels, "t")
        for truth in ph.truth.muscles:
            got = measured.get(truth.muscle, truth.side, truth.level)
            worst_csa = max(worst_csa, csa_error(got.csa_mm2, truth.csa_mm2))
            if truth.csa_mm2 >= MIN_FAT_AREA_MM2:
                worst_ff = max(worst_ff, abs(got.fat_fraction - truth.fat_fraction))
    print(f"\ntrue labels: worst CSA error {worst_csa:.2f} of the allowance, worst fat-fraction error {worst_ff:.3f}")
    assert worst_csa <= 1.0
    assert worst_ff <= FAT_FRACTION_TOLERANCE


#: Below this a cross-section holds too few 2 mm voxels for a fat fraction (docs/imaging.md).
MIN_FAT_AREA_MM2 = 200.0
FAT_FRACTION_TOLERANCE = 0.02


def csa_error(measured, truth):
    """Error as a share of the allowance: 5 % of the truth, at least 35 mm^2 (about nine 2-mm
    voxels: what a small muscle's outline and a steep taper between 5 mm slices can move)."""
    return abs(measured - truth) / max(0.05 * truth, 35.0)


def test_noise_floor_is_removed_from_the_fat_fraction():
    """A lean muscle (2 % fat) under 6 % Rician noise: naive F/(F+W) reads several points high."""
    from imaging.quantify import _mean_amplitude

    rng = np.random.default_rng(0)
    sigma, n = 0.06, 4000
    water = np.hypot(0.88 + rng.normal(0, sigma, n), rng.normal(0, sigma, n))
    fat = np.hypot(0.018 + rng.normal(0, sigma, n), rng.normal(0, sigma, n))
    naive = fat.mean() / (fat.mean() + water.mean())
    corrected = _mean_amplitude(fat, sigma) / (_mean_amplitude(fat, sigma) + _mean_amplitude(water, sigma))
    assert naive - 0.02 > 0.05
    assert abs(corrected - 0.02) < 0.01


def test_a_muscle_only_on_the_slice_of_no_weight_gets_no_row():
    """A disc exactly on slice 5 reads slice 5 alone: a quadratus lumborum drawn from slice 6
    up has no section there and gets no row (not a 0.0 mm^2 row with a fat fraction, which
    passed QC on anatomic phantom subjects at L5-S1); 0.5 slice higher it is half measured."""
    from imaging.labels import MUSCLE_LABELS
    from imaging.levels import Levels
    from imaging.quantify import measure

    labels = np.zeros((20, 20, 12), np.uint8)
    labels[2:12, 2:12, 6:] = MUSCLE_LABELS[("quadratus_lumborum", "left")]
    labels[14:19, 14:19, :] = MUSCLE_LABELS[("psoas", "left")]  # 25 pixels of 4 mm^2 on every slice
    affine = np.diag([2.0, 2.0, 4.0, 1.0])

    def fat_fraction(value, ks, weights):
        return 0.1

    on_disc = measure(labels, affine, Levels({"L5-S1": 5.0}, "test"), "s", fat_fraction)
    assert on_disc.get("quadratus_lumborum", "left", "L5-S1") is None
    assert on_disc.get("psoas", "left", "L5-S1").csa_mm2 == 100.0
    halfway = measure(labels, affine, Levels({"L5-S1": 5.5}, "test"), "s", fat_fraction)
    assert halfway.get("quadratus_lumborum", "left", "L5-S1").csa_mm2 == 200.0

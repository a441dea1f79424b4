"""Levels without a vertebra label map: discs and vertebral bodies found on the image, numbered
from the sacrum (issue 4, item 2), on Dixon and single-contrast phantoms in their own
storage orientations, against the phantom's true disc planes."""
import nibabel as nib
import numpy as np
import pytest

from imaging.find_levels import find_spine
from imaging.labels import DEFAULT_VERTEBRA_LABELS, MUSCLE_LABELS
from imaging.levels import levels_from_vertebrae
from imaging.morphometry import LEVELS
from imaging.phantom import _spine_y
from imaging.quantify import quantify
from imaging.segment import segment
from imaging.single_contrast import prepare
from lumbar_twin.errors import InputError
from app.cli import main

#: Disc planes found within this distance (mm) of the truth along the slice axis (5 mm slices).
DISC_TOLERANCE_MM = 3.0


def canonical(ph, array):
    img = nib.as_closest_canonical(nib.Nifti1Image(array, ph.affine))
    return np.asarray(img.dataobj).astype(np.float32), img.affine


def true_disc_slices(ph, affine):
    """Fractional slice of each true disc plane where the spine crosses it."""
    out = {}
    for level, z in zip(LEVELS, ph.anatomy.disc_z):
        patient = np.array([0.0, float(_spine_y(ph.anatomy, np.array([z]))[0]), z, 1.0])
        voxel = np.linalg.solve(affine, ph.patient_to_scanner @ patient)
        out[level] = voxel[2]
    return out


def channels(ph, contrast):
    if contrast == "dixon":
        return canonical(ph, ph.water)[0], canonical(ph, ph.fat)[0]
    single = prepare(canonical(ph, ph.t1)[0])
    return single.water_like, single.fat_like


@pytest.mark.parametrize("contrast", ["dixon", "t1"])
def test_every_level_is_found_within_a_few_mm_of_the_true_disc(accuracy_phantoms, contrast):
    worst = 0.0
    subjects = accuracy_phantoms if contrast == "dixon" else accuracy_phantoms[1::2]
    for ph in subjects:
        water, fat = channels(ph, contrast)
        affine = canonical(ph, ph.water)[1]
        spacing = tuple(np.linalg.norm(affine[:3, :3], axis=0))
        found = find_spine(water, fat, spacing)
        assert found.levels.found == LEVELS, (ph.anatomy.seed, found.levels.disc_slice)
        truth = true_disc_slices(ph, affine)
        errors = [abs(found.levels.disc_slice[lv] - truth[lv]) * spacing[2] for lv in LEVELS]
        worst = max(worst, max(errors))
        # the estimated bodies overlap the true ones
        vertebrae = canonical(ph, ph.vertebrae)[0].astype(int)
        for name, value in DEFAULT_VERTEBRA_LABELS.items():
            a, b = found.vertebrae == value, vertebrae == value
            assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.6, (ph.anatomy.seed, name)
    print(f"\n{contrast}: worst disc plane error {worst:.1f} mm over {len(subjects)} subjects")
    assert worst <= DISC_TOLERANCE_MM


@pytest.mark.slow
def test_morphometry_without_vertebrae_stays_close_to_the_one_with_them(accuracy_phantoms):
    diffs, dices = [], []
    for ph in accuracy_phantoms[:4]:
        water, fat = channels(ph, "dixon")
        affine = canonical(ph, ph.water)[1]
        spacing = tuple(np.linalg.norm(affine[:3, :3], axis=0))
        vertebrae = canonical(ph, ph.vertebrae)[0].astype(np.int32)
        truth_labels = canonical(ph, ph.labels)[0]
        found = find_spine(water, fat, spacing)
        auto = segment(water, fat, found.vertebrae.astype(np.int32), DEFAULT_VERTEBRA_LABELS, spacing)
        given = segment(water, fat, vertebrae, DEFAULT_VERTEBRA_LABELS, spacing)
        m_auto = quantify(auto, water, fat, affine, found.levels, "a")
        m_given = quantify(given, water, fat, affine, levels_from_vertebrae(vertebrae, DEFAULT_VERTEBRA_LABELS), "g")
        for a, b in zip(m_auto.muscles, m_given.muscles):
            if b.csa_mm2 >= 300:
                diffs.append((abs(a.csa_mm2 / b.csa_mm2 - 1), abs(a.fat_fraction - b.fat_fraction)))
        for value in MUSCLE_LABELS.values():
            x, y = auto == value, truth_labels == value
            dices.append(2 * (x & y).sum() / (x.sum() + y.sum()))
    csa, ff = np.array(diffs).T
    print(f"\nwithout --vertebrae: CSA differs by median {np.median(csa):.1%}, 95th percentile "
          f"{np.percentile(csa, 95):.1%}; fat fraction by median {np.median(ff):.3f}; Dice against truth median "
          f"{np.median(dices):.3f}, min {min(dices):.3f}")
    assert np.median(csa) < 0.02 and np.percentile(csa, 95) < 0.12
    assert np.median(ff) < 0.01
    assert np.median(dices) > 0.95 and min(dices) > 0.85


def test_a_volume_that_stops_above_the_sacrum_is_refused_by_name(phantom, tmp_path, capsys):
    water, affine = canonical(phantom, phantom.water)
    fat = canonical(phantom, phantom.fat)[0]
    levels = levels_from_vertebrae(canonical(phantom, phantom.vertebrae)[0].astype(int), DEFAULT_VERTEBRA_LABELS)
    cut = int(np.ceil(levels.disc_slice["L4-L5"])) - 3  # the middle of L5: no sacrum, no iliac wings
    shifted = affine.copy()
    shifted[:3, 3] = affine[:3, :3] @ np.array([0, 0, cut]) + affine[:3, 3]
    for name, data in (("water", water), ("fat", fat)):
        nib.save(nib.Nifti1Image(np.ascontiguousarray(data[:, :, cut:]), shifted), str(tmp_path / f"{name}.nii.gz"))
    spacing = tuple(np.linalg.norm(affine[:3, :3], axis=0))
    with pytest.raises(InputError, match="L5-S1|sacrum"):
        find_spine(water[:, :, cut:], fat[:, :, cut:], spacing, "w.nii.gz")
    out = tmp_path / "out"
    assert main(["segment", "--water", str(tmp_path / "water.nii.gz"), "--fat", str(tmp_path / "fat.nii.gz"),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "water.nii.gz" in err and "--vertebrae" in err, err
    assert not out.exists()


@pytest.mark.parametrize("below_mm", [20, 25])
def test_a_volume_that_stops_low_in_l5_is_not_numbered_from_l4_l5(phantom, below_mm):
    """A stack stopping 20-25 mm below L4-L5 (inside L5, 26-30 mm tall) shows no disc below
    L4-L5 and, on this phantom, iliac bone beside it: with 20 mm asked of the sacrum (before
    2026-12-01) L4-L5 was called L5-S1 and every level one too low, silently."""
    water, affine = canonical(phantom, phantom.water)
    fat = canonical(phantom, phantom.fat)[0]
    levels = levels_from_vertebrae(canonical(phantom, phantom.vertebrae)[0].astype(int), DEFAULT_VERTEBRA_LABELS)
    spacing = tuple(np.linalg.norm(affine[:3, :3], axis=0))
    cut = int(round(levels.disc_slice["L4-L5"] - below_mm / spacing[2]))
    with pytest.raises(InputError, match="cannot tell whether it is L5-S1"):
        find_spine(water[:, :, cut:], fat[:, :, cut:], spacing, "w.nii.gz")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [500, 503, 506])
def test_the_column_and_discs_are_found_on_the_independent_phantom_family(seed):
    """The anatomic phantom family (written apart from this code) has stacked bowel loops in fat
    in front of a lordotic spine: scored by amplitude at a fixed point, the column fell on the
    bowel on every subject (44-101 mm from the bodies). Its iliac wings are a thin dark shell
    around fatty marrow, which the sacrum check does not take for bone: numbering from the sacrum
    is refused by name, and with the lowest disc named every disc lies within a slice."""
    from imaging.anatomic_phantom import make_anatomic_phantom
    ph = make_anatomic_phantom(seed)
    water, affine = canonical(ph, ph.water)
    fat = canonical(ph, ph.fat)[0]
    vertebrae = canonical(ph, ph.vertebrae)[0].astype(int)
    spacing = tuple(np.linalg.norm(affine[:3, :3], axis=0))
    truth = levels_from_vertebrae(vertebrae, DEFAULT_VERTEBRA_LABELS)
    with pytest.raises(InputError, match="iliac wings|L5-S1"):
        find_spine(water, fat, spacing)
    found = find_spine(water, fat, spacing, lowest_disc="L5-S1")
    assert found.levels.found == LEVELS == truth.found
    for level in LEVELS:
        assert abs(found.levels.disc_slice[level] - truth.disc_slice[level]) <= 1.0, (level, found.levels.disc_slice)
    # the column's point lies in the vertebral body on most slices that cut one
    bodies = np.isin(vertebrae, list(range(1, 6)))
    inside = [bodies[int(round(x)), int(round(y)), k] for k, (x, y) in enumerate(found.column_xy)
              if bodies[:, :, k].any()]
    assert np.mean(inside) > 0.7, np.mean(inside)  # on the old code 0.0-0.15
    for name in ("L2", "L3", "L4"):
        a, b = found.vertebrae == DEFAULT_VERTEBRA_LABELS[name], vertebrae == DEFAULT_VERTEBRA_LABELS[name]
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.7, (seed, name)

"""Whole-vertebra label maps (SPINEPS, TotalSegmentator vertebrae_mr) cut to their bodies.

Truth: the anatomic phantom draws each vertebra's body and posterior elements from its own
bone model and labels both the bodies (`vertebrae`) and the whole vertebrae
(`vertebrae_whole`); the real T2 subject's hand-drawn body map is body-only already.
"""
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from imaging.anatomic_phantom import make_anatomic_phantom
from imaging.conventions import vertebra_convention
from imaging.evaluation import agreement
from imaging.labels import DEFAULT_VERTEBRA_LABELS, MUSCLE_LABELS
from imaging.levels import levels_from_vertebrae
from imaging.segment_anatomical import segment
from imaging.vertebra_map import to_default_convention
from imaging.vertebral_body import vertebral_bodies
REAL = Path(__file__).resolve().parents[1] / "data" / "realmri"

LUMBAR = ("L1", "L2", "L3", "L4", "L5")


def _canonical(phantom, array):
    image = nib.as_closest_canonical(nib.Nifti1Image(array, phantom.affine))
    return np.rint(np.asarray(image.dataobj)).astype(np.int32), tuple(float(z) for z in image.header.get_zooms()[:3])


@pytest.fixture(scope="module")
def phantom():
    return make_anatomic_phantom(500)


def _dice(a, b):
    return 2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def test_whole_vertebrae_come_back_as_their_bodies(phantom):
    bodies, spacing = _canonical(phantom, phantom.vertebrae)
    whole, _ = _canonical(phantom, phantom.vertebrae_whole)
    assert np.count_nonzero(whole) > 1.8 * np.count_nonzero(bodies)  # the posterior elements are there
    got = vertebral_bodies(whole, DEFAULT_VERTEBRA_LABELS, spacing)
    for name in LUMBAR:
        value = DEFAULT_VERTEBRA_LABELS[name]
        assert _dice(got == value, bodies == value) > 0.9, name
    # S1: the alae and the sacrum below are cut off; the body's own outline is rougher
    s1 = DEFAULT_VERTEBRA_LABELS["S1"]
    assert np.count_nonzero(got == s1) < 0.5 * np.count_nonzero(whole == s1)
    assert _dice(got == s1, bodies == s1) > 0.65


def test_body_only_maps_are_unchanged(phantom):
    bodies, spacing = _canonical(phantom, phantom.vertebrae)
    np.testing.assert_array_equal(vertebral_bodies(bodies, DEFAULT_VERTEBRA_LABELS, spacing), bodies)
    t2 = nib.as_closest_canonical(nib.load(REAL / "t2_subject2_vertebrae.nii.gz"))
    drawn = np.rint(t2.get_fdata()).astype(np.int32)
    convention = dict(DEFAULT_VERTEBRA_LABELS)
    got = vertebral_bodies(drawn, convention, t2.header.get_zooms()[:3])
    # a real body's posterolateral corners are sharper than the opening's disc: at most a row of
    # corner tips (9 of 17,715 voxels on 2026-12-02)
    assert np.count_nonzero(got != drawn) <= 0.001 * np.count_nonzero(drawn)


@pytest.mark.slow
def test_segmenter_holds_on_a_whole_vertebra_map(phantom):
    """The same subject segmented with its body map and with its whole-vertebra map: before the
    bodies were cut out, the whole map moved every frame backwards (erector spinae Dice 0.39,
    quadratus lumborum 0.00 on seeds 500-503 and 600-603)."""
    bodies, spacing = _canonical(phantom, phantom.vertebrae)
    whole, _ = _canonical(phantom, phantom.vertebrae_whole)
    water, _ = _canonical(phantom, phantom.water)
    fat, _ = _canonical(phantom, phantom.fat)
    reference, _ = _canonical(phantom, phantom.labels)
    affine = nib.as_closest_canonical(nib.Nifti1Image(phantom.water, phantom.affine)).affine
    levels = levels_from_vertebrae(bodies, DEFAULT_VERTEBRA_LABELS)
    figures = {}
    for name, vertebrae in (("bodies", bodies), ("whole", whole)):
        labels = segment(water.astype(np.float32), fat.astype(np.float32), vertebrae, DEFAULT_VERTEBRA_LABELS, spacing)
        figures[name] = agreement(labels, reference.astype(np.uint8), water, fat, affine, levels, truth=phantom.truth)
    for key in MUSCLE_LABELS:
        assert figures["whole"][key].dice > figures["bodies"][key].dice - 0.05, key
        assert figures["whole"][key].dice > 0.75, key


def test_pipeline_map_loses_posterior_elements_and_says_so(phantom):
    whole, spacing = _canonical(phantom, phantom.vertebrae_whole)
    bodies, _ = _canonical(phantom, phantom.vertebrae)
    spineps = vertebra_convention("spineps")
    in_spineps = np.zeros_like(whole)
    for name, value in DEFAULT_VERTEBRA_LABELS.items():
        in_spineps[whole == value] = spineps.values[name]
    numbered = to_default_convention(in_spineps, spineps, spacing, "vertebrae.nii.gz")
    assert "posterior elements" in numbered.how
    for name in LUMBAR:
        value = DEFAULT_VERTEBRA_LABELS[name]
        assert _dice(numbered.labels == value, bodies == value) > 0.9, name


@pytest.mark.slow
def test_segment_command_with_a_spineps_whole_vertebra_map(phantom, tmp_path, capsys):
    """`lumbar-twin segment --vertebra-labels spineps` on whole vertebrae as SPINEPS labels them
    (L1..L5 = 20..24, sacrum 26): the run says the posterior elements were left out and its
    rows agree with the phantom's truth as the body map's do."""
    import json

    from app.cli import main
    from imaging.anatomic_phantom import write_anatomic_phantom

    paths = write_anatomic_phantom(phantom, tmp_path / "subject")
    whole = nib.load(paths["vertebrae_whole"])
    spineps = vertebra_convention("spineps")
    values = np.asarray(whole.dataobj)
    relabelled = np.zeros(values.shape, np.uint8)
    for name, value in DEFAULT_VERTEBRA_LABELS.items():
        relabelled[values == value] = spineps.values[name]
    nib.save(nib.Nifti1Image(relabelled, whole.affine, whole.header), tmp_path / "seg-vert.nii.gz")
    errors = {}
    for name, vertebrae, extra in (("bodies", paths["vertebrae"], []),
                                   ("whole", tmp_path / "seg-vert.nii.gz", ["--vertebra-labels", "spineps"])):
        out = tmp_path / name
        assert main(["segment", "--water", str(paths["water"]), "--fat", str(paths["fat"]), "--vertebrae",
                     str(vertebrae), *extra, "--accept-implausible", "--out", str(out)]) == 0
        doc = json.loads((out / "morphometry.json").read_text())
        truth = {(r["muscle"], r["side"], r["level"]): r["csa_mm2"] for r in phantom.truth.to_dict()["muscles"]}
        errors[name] = np.array([abs(r["csa_mm2"] / truth[(r["muscle"], r["side"], r["level"])] - 1)
                                 for r in doc["muscles"] if (r["muscle"], r["side"], r["level"]) in truth])
        if name == "whole":
            assert "posterior elements" in json.dumps(doc["provenance"])
    capsys.readouterr()
    assert errors["whole"].size == errors["bodies"].size
    assert np.median(errors["whole"]) <= np.median(errors["bodies"]) + 0.03, (np.median(errors["whole"]),
                                                                              np.median(errors["bodies"]))

"""The built-in segmenters and quantification on a real Dixon scan (tests/data/realmri, manual
erector spinae and multifidus labels; issue 11). Figures and the targets still open are in
docs/imaging.md and benchmarks/segmentation_accuracy.py."""
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from imaging.evaluation import agreement, coarsened, load_reference_subject
from imaging.labels import DEFAULT_VERTEBRA_LABELS, MUSCLE_LABELS
from imaging.levels import levels_from_vertebrae
from imaging.body import body_outline
from imaging.io import load_image
from imaging.plausibility import FAT_ORDER_MARGIN, labels_on_skin
from app.cli import main

DATA = Path(__file__).resolve().parents[1] / "data" / "realmri"
FILES = {part: DATA / f"dixon_subject1_{part}.nii.gz" for part in ("water", "fat", "vertebrae", "labels_manual")}
SPLIT_NOT_FOUND = "its border with the erector spinae was not found"
BACK = [("erector_spinae", "left"), ("erector_spinae", "right"), ("multifidus", "left"), ("multifidus", "right")]


@pytest.fixture(scope="module")
def subject():
    return load_reference_subject(FILES["water"], FILES["fat"], FILES["vertebrae"], FILES["labels_manual"],
                                  DATA / "labels_manual.json")


@pytest.fixture(scope="module")
def spacing(subject):
    return tuple(float(v) for v in np.linalg.norm(subject["affine"][:3, :3], axis=0))


@pytest.fixture(scope="module")
def anatomical(subject, spacing):
    from imaging.segment_anatomical import segment
    return segment(subject["water"], subject["fat"], subject["vertebrae"], DEFAULT_VERTEBRA_LABELS, spacing)


@pytest.mark.slow
def test_anatomical_segmenter_finds_the_back_muscles_on_a_real_scan(subject, anatomical):
    """A guard below the issue's Dice 0.90 target and far above the watershed's 0.00-0.11
    (measured 2026-12-02 with the redrawn vertebral body map: erector spinae 0.900 / 0.867,
    multifidus 0.803 / 0.790, left / right; fat fraction against the manual outline's
    0.002-0.058 at the median level, target 0.02). The erector spinae's area is within 25 % of
    the manual one at every level (left 0-10 %, right 2-19 % over). With the transverse
    processes' plane flat (no slope beyond their tips: segment_anatomical.
    TRANSVERSE_PROCESS_SLOPE) the left read 23-37 % over, the lean wedge in front of the manual
    outline's sloping front. With the first, bulging body map the figures read 0.896 / 0.880;
    that map put the frame's back wall 4-9 mm too far back."""
    levels = levels_from_vertebrae(subject["vertebrae"], DEFAULT_VERTEBRA_LABELS)
    found = agreement(anatomical, subject["reference"], subject["water"], subject["fat"], subject["affine"], levels)
    assert sorted(found) == sorted(BACK)
    for key in BACK:
        floor = 0.82 if key[0] == "erector_spinae" else 0.70
        assert found[key].dice >= floor, (key, found[key].dice)
        assert np.median(found[key].level_ff_error) <= 0.11, key  # fat fraction against the manual outline's
        if key[0] == "erector_spinae":
            assert found[key].level_csa_error.max() <= 0.25, (key, found[key].level_csa_error)


@pytest.mark.slow
def test_anatomical_segmenter_holds_on_2_mm_voxels(subject):
    """The same scan on 2.04 mm in-plane voxels (2 x 2 block averages, the coarse end of the
    sizes issue 11 names): no fixed voxel count may carry the method. Guards below the figures
    measured 2026-12-02 with the redrawn body map (erector spinae 0.854 / 0.839, multifidus
    0.803 / 0.748; with the first, bulging map 0.890 / 0.859 and 0.794 / 0.767)."""
    from imaging.segment_anatomical import segment
    coarse = coarsened(subject, 2)
    spacing = tuple(float(v) for v in np.linalg.norm(coarse["affine"][:3, :3], axis=0))
    assert spacing[0] == pytest.approx(2.037, abs=0.01)
    labels = segment(coarse["water"], coarse["fat"], coarse["vertebrae"], DEFAULT_VERTEBRA_LABELS, spacing)
    levels = levels_from_vertebrae(coarse["vertebrae"], DEFAULT_VERTEBRA_LABELS)
    assert list(levels.found) == ["L2-L3", "L3-L4", "L4-L5"]
    found = agreement(labels, coarse["reference"], coarse["water"], coarse["fat"], coarse["affine"], levels)
    for key in BACK:
        floor = 0.80 if key[0] == "erector_spinae" else 0.70
        assert found[key].dice >= floor, (key, found[key].dice)


@pytest.mark.slow
def test_no_muscle_on_the_skin(subject, anatomical, spacing):
    """The lean line of the skin had joined the candidate tissue and taken the back muscles'
    seeds (the watershed's result shows it; the anatomical one must not)."""
    body = body_outline(subject["water"] + subject["fat"])
    assert labels_on_skin(anatomical, body, spacing) == {}
    skin = np.zeros_like(anatomical)
    skin[body & ~ndimage.binary_erosion(body, iterations=1)] = MUSCLE_LABELS[("erector_spinae", "left")]
    assert list(labels_on_skin(skin, body, spacing))[0] == ("erector_spinae", "left")  # the check itself fires


@pytest.mark.slow
def test_every_muscle_on_its_own_side(subject, anatomical):
    """Left labels on the patient's left of the vertebral bodies (canonical axis 0 runs to the
    patient's right)."""
    midline = np.nonzero(subject["vertebrae"])[0].mean()
    for (muscle, side), value in MUSCLE_LABELS.items():
        xs = np.nonzero(anatomical == value)[0]
        if xs.size:
            assert (xs.mean() > midline) == (side == "right"), (muscle, side)


@pytest.mark.slow
def test_segment_command_on_the_real_scan(tmp_path, subject, spacing):
    out = tmp_path / "seg"
    assert main(["segment", "--water", str(FILES["water"]), "--fat", str(FILES["fat"]),
                 "--vertebrae", str(FILES["vertebrae"]), "--method", "anatomical", "--subject", "REAL-1",
                 "--accept-implausible", "--out", str(out)]) == 0
    doc = json.loads((out / "morphometry.json").read_text())
    assert doc["provenance"]["method"].startswith("built-in anatomical")
    # whatever is still implausible is psoas or quadratus lumborum, which have no reference here
    # (a multifidus split the segmenter did not find is said, below)
    assert not any(line.startswith(("erector spinae", "multifidus")) and SPLIT_NOT_FOUND not in line
                   for line in doc["provenance"]["warnings"])
    assert doc["provenance"]["levels_found"] == ["L2-L3", "L3-L4", "L4-L5"]  # no sacrum, no L1 in view
    # a psoas or quadratus lumborum fattier than the erector spinae beside it is marked, not passed
    rows = {(r["muscle"], r["side"], r["level"]): r for r in doc["muscles"]}
    for (muscle, side, level), row in rows.items():
        if muscle in ("psoas", "quadratus_lumborum") and ("erector_spinae", side, level) in rows:
            fattier = row["fat_fraction"] > rows[("erector_spinae", side, level)]["fat_fraction"] + FAT_ORDER_MARGIN
            marked = any("in the erector spinae beside it" in reason for reason in row["qc_reasons"])
            assert fattier == marked and (row["qc"] != "pass" if fattier else True), (muscle, side, level)
    # a multifidus row whose border with the erector spinae was not found is marked, and such a
    # row is well off the manual labels' area (measured 30 and 66 %)
    levels = levels_from_vertebrae(subject["vertebrae"], DEFAULT_VERTEBRA_LABELS)
    split = [key for key, row in rows.items() if any(SPLIT_NOT_FOUND in reason for reason in row["qc_reasons"])]
    assert split, "no multifidus row marked on the real scan (its right multifidus is 48 % over at the median)"
    for key in split:
        assert key[0] == "multifidus" and rows[key]["qc"] == "warn", key
        z = levels.disc_slice[key[2]]
        k0 = int(np.floor(z))
        count = [(subject["reference"][:, :, k] == MUSCLE_LABELS[key[:2]]).sum() * spacing[0] * spacing[1]
                 for k in (k0, k0 + 1)]
        manual = (1 - (z - k0)) * count[0] + (z - k0) * count[1]
        assert abs(rows[key]["csa_mm2"] - manual) > 0.2 * manual, (key, rows[key]["csa_mm2"], manual)
    assert (out / "qc.png").stat().st_size > 10_000


def test_manual_labels_quantified_like_a_direct_count(tmp_path, subject, spacing):
    """Quantification of real labels: CSA at each disc against whole voxels counted on the two
    bracketing slices, within partial-volume border handling (a few per cent)."""
    out = tmp_path / "import"
    assert main(["segment", "--water", str(FILES["water"]), "--fat", str(FILES["fat"]),
                 "--vertebrae", str(FILES["vertebrae"]), "--labels", str(FILES["labels_manual"]),
                 "--label-map", str(DATA / "labels_manual.json"), "--accept-implausible", "--out", str(out)]) == 0
    levels = levels_from_vertebrae(subject["vertebrae"], DEFAULT_VERTEBRA_LABELS)
    pixel = spacing[0] * spacing[1]
    for row in json.loads((out / "morphometry.json").read_text())["muscles"]:
        if (row["muscle"], row["side"]) not in BACK:
            continue
        z = levels.disc_slice[row["level"]]
        k0 = int(np.floor(z))
        count = [(subject["reference"][:, :, k] == MUSCLE_LABELS[(row["muscle"], row["side"])]).sum() * pixel
                 for k in (k0, k0 + 1)]
        direct = (1 - (z - k0)) * count[0] + (z - k0) * count[1]
        assert abs(row["csa_mm2"] - direct) <= 0.06 * direct, row
        assert 0.0 < row["fat_fraction"] < 0.3, row  # a healthy volunteer's back muscles


def test_levels_found_on_the_real_image_match_its_vertebra_label(subject, spacing):
    """Without a vertebra label map: the discs found on the real scan (numbered from the lowest
    disc in view, L4-L5: the volume does not reach the sacrum) lie where its vertebra label
    puts them. Before 2026-12-01 the column was found 24 mm to the side (the volume-wide body
    threshold lost the back of the five lowest slices, and "soft tissue" was measured against
    the body's median signal, which subcutaneous fat raises): L4-L5 was placed 64 mm too high."""
    from imaging.find_levels import find_spine

    truth = levels_from_vertebrae(subject["vertebrae"], DEFAULT_VERTEBRA_LABELS).disc_slice
    found = find_spine(subject["water"], subject["fat"], spacing, "real", lowest_disc="L4-L5")
    assert set(truth) <= set(found.levels.disc_slice), found.levels.disc_slice
    for level, position in truth.items():  # 4 mm slices
        assert abs(found.levels.disc_slice[level] - position) * spacing[2] <= 3.0, (level, found.levels.disc_slice)
    column = np.array(ndimage.center_of_mass(subject["vertebrae"] > 0)[:2])
    offsets = np.hypot(*((found.column_xy - column) * np.array(spacing[:2])).T)
    assert np.median(offsets) < 10.0, np.median(offsets)


def test_segment_without_a_vertebra_map_measures_the_levels_inside_the_real_volume(tmp_path, capsys, subject):
    """The real scan's L1-L2 disc is found on its top slice (27.7 of 0-28): numbered, but not
    measured (its fat-fraction slab and bracketing slices lie outside the volume; the tissue
    there read as a 1764 mm^2 psoas and `segment` refused the whole run). The three discs inside
    are measured, and the back muscles agree with the manual labels as with the vertebra map.
    Quadratus lumborum has no reference here and is partly drawn on the ascending colon at
    L3-L4 (docs/imaging.md), which plausibility flags (with the vertebra map too, at other
    levels): the run is written with --accept-implausible and the back muscles' rows must pass."""
    out = tmp_path / "seg"
    assert main(["segment", "--water", str(FILES["water"]), "--fat", str(FILES["fat"]), "--lowest-disc", "L4-L5",
                 "--accept-implausible", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "not measured: L1-L2" in err and "not in the image: L5-S1" in err
    doc = json.loads((out / "morphometry.json").read_text())
    assert doc["provenance"]["levels_found"] == ["L2-L3", "L3-L4", "L4-L5"]
    back_rows = [r for r in doc["muscles"] if (r["muscle"], r["side"]) in BACK]
    assert len(back_rows) == 12, back_rows
    for r in back_rows:  # pass, or a multifidus split not found said as such
        assert r["qc"] == "pass" or (r["muscle"] == "multifidus" and r["qc"] == "warn" and
                                     all(SPLIT_NOT_FOUND in reason for reason in r["qc_reasons"])), r
    assert {r["muscle"] for r in doc["muscles"] if r["qc"] == "fail"} <= {"quadratus_lumborum"}
    labels = load_image(out / "labels.nii.gz").data
    for key in BACK:
        ours, ref = labels == MUSCLE_LABELS[key], subject["reference"] == MUSCLE_LABELS[key]
        assert 2 * (ours & ref).sum() / (ours.sum() + ref.sum()) > 0.75, key

"""External segmentations on real scans: conventions of established segmenters, side and
position checks, vertebra maps that break their convention, absent is not zero, QC that gates.

Real data: tests/data/realmri (README there: sources and licences). The Dixon subject has manual
erector spinae and multifidus labels and per-vertebra labels L2..L5; the T1 subject has
TotalSegmentator total_mr output (merged classes, all vertebrae in one value, no sacrum).
"""
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from imaging.conventions import muscle_convention, vertebra_convention
from imaging.io import load_image
from imaging.labels import DEFAULT_VERTEBRA_LABELS, ROW_LABELS
from imaging.morphometry import load_morphometry
from imaging.pipeline import import_labels
from imaging.vertebra_map import to_default_convention
from lumbar_twin.errors import InputError
from app.cli import main

REAL = Path(__file__).parents[1] / "data" / "realmri"
DIXON = ["--water", str(REAL / "dixon_subject1_water.nii.gz"), "--fat", str(REAL / "dixon_subject1_fat.nii.gz"),
         "--vertebrae", str(REAL / "dixon_subject1_vertebrae.nii.gz"),
         "--labels", str(REAL / "dixon_subject1_labels_manual.nii.gz")]
T1 = ["--image", str(REAL / "t1_subject3_image.nii.gz"),
      "--vertebrae", str(REAL / "t1_subject3_labels_totalsegmentator.nii.gz"),
      "--vertebra-labels", "totalsegmentator-total-mr",
      "--labels", str(REAL / "t1_subject3_labels_totalsegmentator.nii.gz"), "--label-map", "totalsegmentator-total-mr"]


def patient_file(tmp_path: Path, seg: Path, pseudonym: str, sex: str, age: int, height_m: float, mass_kg: float) -> Path:
    """A patient file whose morphometry is `seg`/morphometry.json."""
    path = tmp_path / "patient.json"
    path.write_text(json.dumps({"schema": "lumbar-twin/patient@1", "id": pseudonym, "sex": sex, "age": age,
                                "height_m": height_m, "mass_kg": mass_kg, "morphometry": str(seg / "morphometry.json")}))
    return path


def one_line_error(capsys, out: Path, *expected: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in err, err
    assert not out.exists()
    return err


def test_manual_labels_of_two_muscles_give_rows_for_those_only(tmp_path):
    """Absent is not zero: the manual map holds erector spinae and multifidus only, so psoas and
    quadratus lumborum have no rows; the twin takes the template for them and says so."""
    out = tmp_path / "seg"
    assert main(["segment", *DIXON, "--label-map", str(REAL / "labels_manual.json"), "--out", str(out)]) == 0
    morph = load_morphometry(out / "morphometry.json")
    assert {m.muscle for m in morph.muscles} == {"erector_spinae", "multifidus"}
    assert {m.level for m in morph.muscles} == {"L2-L3", "L3-L4", "L4-L5"}
    assert all(m.csa_mm2 > 300 and m.qc == "pass" for m in morph.muscles)
    assert morph.provenance["not_measured"] == [] and morph.provenance["levels_missing"] == ["L1-L2", "L5-S1"]
    patient = patient_file(tmp_path, out, "DX-1", "male", 30, 1.78, 75.0)
    assert main(["build", str(patient), "--out", str(tmp_path / "twin")]) == 0
    uses = {(u["muscle"], u["side"], u["level"]): u["use"]
            for u in json.loads((tmp_path / "twin" / "twin.json").read_text())["morphometry_use"]}
    assert uses[("erector_spinae", "left", "L3-L4")] == "measured"
    assert uses[("erector_spinae", "left", "L1-L2")] == "template"
    assert {uses[("psoas", side, level)] for side in ("left", "right") for level in ("L2-L3", "L4-L5")} == {"template"}


def test_left_and_right_swapped_stops_the_run(tmp_path, capsys):
    """A map (or its convention) with left and right swapped, as released models have shipped."""
    swapped = tmp_path / "swapped.json"
    swapped.write_text(json.dumps({"erector_spinae_left": 1, "multifidus_left": 2, "multifidus_right": 3,
                                   "erector_spinae_right": 4}))
    out = tmp_path / "seg"
    assert main(["segment", *DIXON, "--label-map", str(swapped), "--out", str(out)]) == 2
    one_line_error(capsys, out, "lies on the patient's right", "swapped", "value 1 in the file")


def test_a_label_of_another_class_stops_the_run(tmp_path, capsys):
    """The erector spinae's label read as psoas: a psoas behind the laminae."""
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"psoas_right": 1, "multifidus_right": 2, "multifidus_left": 3,
                                 "erector_spinae_left": 4}))
    out = tmp_path / "seg"
    assert main(["segment", *DIXON, "--label-map", str(wrong), "--out", str(out)]) == 2
    one_line_error(capsys, out, "psoas_right lies behind the vertebrae")


def test_an_anchor_that_contradicts_the_vertebra_labels_stops(tmp_path, capsys):
    out = tmp_path / "seg"
    assert main(["segment", *DIXON, "--label-map", str(REAL / "labels_manual.json"), "--lowest-disc", "L5-S1",
                 "--out", str(out)]) == 2
    one_line_error(capsys, out, "--lowest-disc L5-S1 contradicts the vertebra labels", "lowest disc is L4-L5")


def test_totalsegmentator_total_mr_output_on_a_real_scan(tmp_path, capsys):
    """Merged classes stay merged rows; all vertebrae in one value and no sacrum: numbered only
    with an anchor; the twin splits autochthon by the template's ratio and marks it estimated."""
    out = tmp_path / "seg"
    assert main(["segment", *T1, "--out", str(out)]) == 2
    one_line_error(capsys, out, "all vertebrae are one value (19)", "--lowest-disc")
    assert main(["segment", *T1, "--lowest-disc", "L1-L2", "--out", str(out)]) == 0
    morph = load_morphometry(out / "morphometry.json")
    assert {(m.muscle, m.level) for m in morph.muscles} == {("autochthon", "L1-L2"), ("iliopsoas", "L1-L2")}
    assert "user's anchor (lowest disc L1-L2)" in morph.provenance["levels_from"]
    autochthon = morph.get("autochthon", "left", "L1-L2")
    assert 1000 < autochthon.csa_mm2 < 3500  # both back muscles of one side at L1-L2
    patient = patient_file(tmp_path, out, "TS-3", "male", 40, 1.75, 80.0)
    assert main(["build", str(patient), "--out", str(tmp_path / "twin")]) == 0
    uses = {(u["muscle"], u["side"], u["level"]): u for u in
            json.loads((tmp_path / "twin" / "twin.json").read_text())["morphometry_use"]}
    assert uses[("erector_spinae", "left", "L1-L2")]["use"] == "estimated"
    assert "autochthon" in uses[("multifidus", "left", "L1-L2")]["note"]
    assert uses[("psoas", "right", "L1-L2")]["use"] == "estimated"
    assert uses[("psoas", "right", "L3-L4")]["use"] == "template"
    assert uses[("psoas", "right", "L3-L4")]["qc"] == "not imaged"  # the clinic page's qc column
    assert uses[("erector_spinae", "left", "L1-L2")]["qc"] == autochthon.qc  # the row it was estimated from
    # and on to a verified, exported, checked profile
    assert main(["plan", str(tmp_path / "twin"), "--exercise", "trunk_extension", "--targets", "multifidus=0.25",
                 "--trials", "30", "--out", str(tmp_path / "plan")]) == 0
    assert main(["check", str(tmp_path / "plan" / "profile.json")]) == 0
    assert "multifidus rests on rows" in (tmp_path / "plan" / "report.md").read_text()


def test_total_mr_passed_as_per_vertebra_is_refused_with_what_the_map_looks_like(tmp_path, capsys):
    out = tmp_path / "seg"
    args = [a if a != "totalsegmentator-total-mr" else "totalsegmentator" for a in T1[:4]]
    assert main(["segment", *args, "--vertebra-labels", "totalsegmentator", "--out", str(out)]) == 2
    one_line_error(capsys, out, "no vertebra of the convention 'totalsegmentator'",
                   "it looks like --vertebra-labels totalsegmentator-total-mr")


def test_musclemap_abdomen_convention_reads_the_real_t2_labels():
    image = load_image(REAL / "t2_subject2_labels_musclemap.nii.gz", "label map")
    labels = import_labels(image, "musclemap-abdomen")
    raw = np.rint(image.data).astype(int)
    assert np.array_equal(labels == ROW_LABELS[("psoas", "right")], raw == 5)
    assert np.array_equal(labels == ROW_LABELS[("quadratus_lumborum", "left")], raw == 8)
    # the same map read as MuscleMap's whole-body model holds none of its muscles
    with pytest.raises(InputError, match="no muscle of the convention 'musclemap-wholebody'"):
        import_labels(image, "musclemap-wholebody")
    # a map with values the abdomen model never writes is not that model's
    other = nib.Nifti1Image(np.where(raw == 8, 9, raw).astype(np.int16), image.affine)
    nib.save(other, "/tmp/lumbar-twin-mm9.nii.gz")
    with pytest.raises(InputError, match=r"label values \[9\] are not in the convention 'musclemap-abdomen'"):
        import_labels(load_image("/tmp/lumbar-twin-mm9.nii.gz"), "musclemap-abdomen")
    assert muscle_convention("musclemap-wholebody").values[5121] == ROW_LABELS[("psoas", "left")]


# --- vertebra maps that break their convention (issue 13, point 6), on the real Dixon subject's
# per-vertebra map (L2..L5 = 2..5): faults made by relabelling real vertebrae


@pytest.fixture(scope="module")
def real_vertebrae():
    image = load_image(REAL / "dixon_subject1_vertebrae.nii.gz", "vertebra label map")
    return np.rint(image.data).astype(int), image.spacing_mm


def test_the_real_per_vertebra_map_passes(real_vertebrae):
    values, spacing = real_vertebrae
    out = to_default_convention(values, vertebra_convention("default"), spacing, "v")
    # numbered as drawn; the body cut (imaging.vertebral_body) may take a corner tip or two
    assert np.array_equal(out.labels[out.labels > 0], values[out.labels > 0])
    assert np.count_nonzero(out.labels != values) <= 0.001 * np.count_nonzero(values)


def test_all_vertebrae_in_one_value_given_as_per_vertebra(real_vertebrae):
    values, spacing = real_vertebrae
    merged = np.where(values > 0, 2, 0)
    with pytest.raises(InputError, match=r"value 2 \(L2 .*\) spans \d+ mm along the spine, as several vertebrae"):
        to_default_convention(merged, vertebra_convention("default"), spacing, "v")


def test_values_out_of_cranio_caudal_order(real_vertebrae):
    values, spacing = real_vertebrae
    swapped = values.copy()
    swapped[values == 2], swapped[values == 4] = 4, 2
    with pytest.raises(InputError, match=r"out of cranio-caudal order; from the top the map holds L4 \(value 4\), L3"):
        to_default_convention(swapped, vertebra_convention("default"), spacing, "v")


def test_an_unlabelled_vertebra_between_two_labelled_ones_is_never_stretched_over(real_vertebrae):
    """A transitional vertebra left unlabelled between L5 and S1, made from the real map: its L4
    is relabelled L5 and its L5 is called S1, so the real L5 body lies unlabelled between them."""
    values, spacing = real_vertebrae
    shifted = np.zeros_like(values)
    shifted[values == 3] = 5  # real L3 called L5 ...
    shifted[values == 5] = 6  # ... real L5 called S1: the real L4 lies unlabelled between them
    with pytest.raises(InputError, match=r"between L5 and S1 lies a \d+ mm gap, as long as a vertebral body"):
        to_default_convention(shifted, vertebra_convention("default"), spacing, "v")


def test_a_sixth_lumbar_vertebra_stops(real_vertebrae):
    values, spacing = real_vertebrae
    spineps = np.zeros_like(values)
    for k, value in zip((2, 3, 4, 5), (21, 22, 23, 25)):  # L2, L3, L4 and an "L6" in SPINEPS values
        spineps[values == k] = value
    with pytest.raises(InputError, match="six lumbar vertebrae"):
        to_default_convention(spineps, vertebra_convention("spineps"), spacing, "v")
    spineps[values == 5] = 124  # an IVD value (100 + X) is ignored, not read as a vertebra
    out = to_default_convention(spineps, vertebra_convention("spineps"), spacing, "v")
    assert set(np.unique(out.labels)) == {0, DEFAULT_VERTEBRA_LABELS["L2"], DEFAULT_VERTEBRA_LABELS["L3"],
                                          DEFAULT_VERTEBRA_LABELS["L4"]}


def test_vessels_at_vertebra_values_are_not_vertebrae(real_vertebrae):
    """total_mr's iliac vessels (26-29) read with the CT convention, where 26-29 are S1..L3:
    a 'vertebra' far beside the column."""
    values, spacing = real_vertebrae
    ct = np.zeros_like(values)
    for k, value in zip((2, 3, 4, 5), (30, 29, 28, 27)):
        ct[values == k] = value
    vessel = np.zeros_like(values, bool)
    cx, cy = (int(c) for c in np.argwhere(values == 5).mean(axis=0)[:2])
    vessel[cx + 60:cx + 68, cy + 20:cy + 28, 0:8] = True  # 32 mm of a vessel 61 mm beside the column
    ct[vessel] = 26
    with pytest.raises(InputError, match=r"value 26 \(S1 .*\) lies \d+ mm beside the spine's column"):
        to_default_convention(ct, vertebra_convention("totalsegmentator"), spacing, "v")


def test_build_refuses_a_failed_row_unless_accepted(tmp_path, capsys):
    """QC that gates: a row whose QC failed stops `build` with one line; accepted explicitly, it is
    used and marked in twin.json."""
    out = tmp_path / "seg"
    assert main(["segment", *DIXON, "--label-map", str(REAL / "labels_manual.json"), "--out", str(out)]) == 0
    capsys.readouterr()
    document = json.loads((out / "morphometry.json").read_text())
    row = next(m for m in document["muscles"] if (m["muscle"], m["side"], m["level"]) == ("multifidus", "left", "L3-L4"))
    row.update(qc="fail", qc_reasons=["multifidus left at L3-L4: drawn on the erector spinae (reader's note)"])
    (out / "morphometry.json").write_text(json.dumps(document))
    patient = patient_file(tmp_path, out, "DX-1", "male", 30, 1.78, 75.0)
    twin = tmp_path / "twin"
    assert main(["build", str(patient), "--out", str(twin)]) == 2
    one_line_error(capsys, twin, "multifidus left at L3-L4 failed QC", "--accept-qc-fail")
    assert main(["build", str(patient), "--out", str(twin), "--accept-qc-fail"]) == 0
    assert "1 accepted qc fail" in capsys.readouterr().out
    uses = {(u["muscle"], u["side"], u["level"]): u for u in json.loads((twin / "twin.json").read_text())["morphometry_use"]}
    assert uses[("multifidus", "left", "L3-L4")]["use"] == "accepted_qc_fail"
    assert "drawn on the erector spinae" in uses[("multifidus", "left", "L3-L4")]["note"]
    assert uses[("multifidus", "left", "L3-L4")]["qc"] == "fail"
    assert {u["qc"] for k, u in uses.items() if u["use"] == "measured"} <= {"pass", "warn"}
    from planning.plan import Target
    from planning.report import template_target_lines
    from twin.simulate import load_twin

    built = load_twin(twin)

    class Planned:  # what template_target_lines reads of a PlanResult; the report names the row
        twin = built
        plan = type("Plan", (), {"targets": (Target("psoas", 0.1),)})()

    assert "- The twin uses rows that failed imaging QC, accepted at build: multifidus left L3-L4." in \
        template_target_lines(Planned)


def test_the_real_t2_stack_with_musclemap_labels_reaches_a_checked_profile(tmp_path):
    """The real axial T2 stack, MuscleMap's abdomen labels and a vertebra map drawn from the image
    (README: about 80 % sure of the numbering): levels L4-L5 and L5-S1 (the stack ends at the
    L3-L4 disc), every row marked for its approximate T2 fat fraction, the quadratus lumborum not
    labelled at L5-S1 (it ends at the iliac crest) is not measured, and the twin goes on to a
    verified, exported and checked profile."""
    out = tmp_path / "seg"
    assert main(["segment", "--image", str(REAL / "t2_subject2_image.nii.gz"), "--image-contrast", "t2",
                 "--labels", str(REAL / "t2_subject2_labels_musclemap.nii.gz"), "--label-map", "musclemap-abdomen",
                 "--vertebrae", str(REAL / "t2_subject2_vertebrae.nii.gz"), "--out", str(out)]) == 0
    morph = load_morphometry(out / "morphometry.json")
    assert morph.provenance["levels_found"] == ["L4-L5", "L5-S1"]
    assert len(morph.muscles) == 14 and {m.qc for m in morph.muscles} == {"warn"}
    assert morph.get("quadratus_lumborum", "left", "L5-S1") is None
    assert any(line.startswith("quadratus lumborum left at L5-S1") for line in morph.provenance["not_measured"])
    for m in morph.muscles:  # lean, healthy-looking muscle at these levels
        assert 300 < m.csa_mm2 < 2500 and 0.0 < m.fat_fraction < 0.2, m
    patient = patient_file(tmp_path, out, "T2-2", "female", 45, 1.68, 70.0)
    assert main(["build", str(patient), "--out", str(tmp_path / "twin")]) == 0
    assert main(["plan", str(tmp_path / "twin"), "--exercise", "trunk_extension", "--targets", "multifidus=0.25",
                 "--trials", "30", "--out", str(tmp_path / "plan")]) == 0
    assert main(["check", str(tmp_path / "plan" / "profile.json")]) == 0


def test_a_t2_stack_is_not_refused_for_its_contrast_but_asks_for_what_it_lacks(tmp_path, capsys):
    """The real axial T2 stack: no longer 'needs a T1-weighted image'; without a vertebra map
    its levels cannot be numbered (the marrow-disc contrast the image-based finder reads is T1's
    and Dixon's), and the built-in segmenters do not read T2: each says what to give."""
    t2 = ["segment", "--image", str(REAL / "t2_subject2_image.nii.gz"), "--image-contrast", "t2"]
    out = tmp_path / "seg"
    assert main([*t2, "--labels", str(REAL / "t2_subject2_labels_musclemap.nii.gz"), "--label-map",
                 "musclemap-abdomen", "--out", str(out)]) == 2
    one_line_error(capsys, out, "give --vertebrae")
    assert main([*t2, "--out", str(out)]) == 2
    one_line_error(capsys, out, "give --labels or --segmenter")
    # given as a T1 image (no --image-contrast), the refusal names the option it lacks
    assert main(["segment", "--image", str(REAL / "t2_subject2_image.nii.gz"), "--out", str(out)]) == 2
    one_line_error(capsys, out, "--image-contrast t2")


def test_t2_rows_carry_their_fat_fraction_caveat(tmp_path):
    """A T2-weighted stack with labels and vertebrae: CSA from the labels, the mixture-model fat
    fraction marked approximate on every row (QC warn) and in the provenance. Made from the Dixon
    subject's in-phase sum (water + fat), whose fat is bright as on T2 fast spin echo: this checks
    the path, not the T2 accuracy (docs/imaging.md states what is known)."""
    water = load_image(REAL / "dixon_subject1_water.nii.gz").data
    fat = load_image(REAL / "dixon_subject1_fat.nii.gz").data
    stored = nib.load(str(REAL / "dixon_subject1_water.nii.gz"))
    in_phase = nib.as_closest_canonical(stored)  # the canonical grid the loader also uses
    nib.save(nib.Nifti1Image((water + fat).astype(np.float32), in_phase.affine), str(tmp_path / "t2like.nii.gz"))
    vertebrae = nib.as_closest_canonical(nib.load(str(REAL / "dixon_subject1_vertebrae.nii.gz")))
    labels = nib.as_closest_canonical(nib.load(str(REAL / "dixon_subject1_labels_manual.nii.gz")))
    nib.save(vertebrae, str(tmp_path / "v.nii.gz"))
    nib.save(labels, str(tmp_path / "l.nii.gz"))
    out = tmp_path / "seg"
    assert main(["segment", "--image", str(tmp_path / "t2like.nii.gz"), "--image-contrast", "t2",
                 "--vertebrae", str(tmp_path / "v.nii.gz"), "--labels", str(tmp_path / "l.nii.gz"),
                 "--label-map", str(REAL / "labels_manual.json"), "--out", str(out)]) == 0
    morph = load_morphometry(out / "morphometry.json")
    assert morph.provenance["contrast"] == "t2" and "approximate" in morph.provenance["fat_fraction"]
    assert {m.qc for m in morph.muscles} == {"warn"} and len(morph.muscles) == 12
    dixon = tmp_path / "dixon"
    assert main(["segment", *DIXON, "--label-map", str(REAL / "labels_manual.json"), "--out", str(dixon)]) == 0
    reference = load_morphometry(dixon / "morphometry.json")
    for row in morph.muscles:  # CSA from the same labels: the same areas within border handling
        assert abs(row.csa_mm2 / reference.get(row.muscle, row.side, row.level).csa_mm2 - 1) < 0.08


def test_the_plan_report_says_which_targets_rest_on_template_rows(tmp_path):
    """A twin from the manual labels (erector spinae and multifidus at L2-L3..L4-L5 only): a plan
    targeting the multifidus says, in report.md, where its rows came from the template."""
    from planning.plan import Target
    from planning.report import template_target_lines
    from twin.simulate import load_twin

    out = tmp_path / "seg"
    assert main(["segment", *DIXON, "--label-map", str(REAL / "labels_manual.json"), "--out", str(out)]) == 0
    patient = patient_file(tmp_path, out, "DX-1", "male", 30, 1.78, 75.0)
    assert main(["build", str(patient), "--out", str(tmp_path / "twin")]) == 0

    class Planned:  # what template_target_lines reads of a PlanResult
        twin = load_twin(tmp_path / "twin")
        plan = type("Plan", (), {"targets": (Target("multifidus", 0.25), Target("psoas", 0.1, "left"))})()

    lines = template_target_lines(Planned)
    assert "- multifidus rests on rows not measured: the template's at left L1-L2, left L5-S1, right L1-L2, " \
           "right L5-S1." in lines
    assert any(line.startswith("- psoas.left rests on rows not measured") and "left L3-L4" in line
               and "right" not in line for line in lines)


@pytest.mark.parametrize("new_value", [0, 9])
def test_a_vertebra_missing_between_two_labelled_ones_stops(real_vertebrae, new_value):
    """The real map with L3 erased (a tool that lost it) or given a value the convention lacks:
    L2-L3 and L3-L4 are in the image, and must not be dropped as if out of view."""
    values, spacing = real_vertebrae
    lost = values.copy()
    lost[values == 3] = new_value
    match = r"L3 not labelled between L2 and L5" + (r".*does not name: 9" if new_value else "")
    with pytest.raises(InputError, match=match):
        to_default_convention(lost, vertebra_convention("default"), spacing, "v")


def test_a_label_map_resampled_with_interpolation_stops_naming_the_file(tmp_path):
    """Real manual labels saved as float with 1.5 where 1 meets 2 (linear resampling): reading
    it would round half of the border into the wrong muscle."""
    real = REAL / "dixon_subject1_labels_manual.nii.gz"
    img = nib.load(real)
    data = np.asarray(img.dataobj).astype(np.float32)
    border = (data == 1) & ((np.roll(data, 1, axis=0) == 2) | (np.roll(data, -1, axis=0) == 2))
    assert border.sum() > 50
    data[border] = 1.5
    path = tmp_path / "labels_float.nii.gz"
    nib.save(nib.Nifti1Image(data, img.affine), path)
    with pytest.raises(InputError, match=r"labels_float.nii.gz.*not whole numbers \(\d+ voxels, e.g. 1.5\)"):
        import_labels(load_image(path, "label map"), REAL / "labels_manual.json")
    data[border] = 1.0  # whole numbers stored as float are fine
    nib.save(nib.Nifti1Image(data, img.affine), path)
    assert import_labels(load_image(path, "label map"), REAL / "labels_manual.json").any()

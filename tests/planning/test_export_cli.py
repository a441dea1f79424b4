"""Device files, `check`, `whatif` and the plan command's faults (issue 5, items 6, 7, 8)."""
import csv
import json

import numpy as np
import pytest
import yaml

from lumbar_twin.fileio import sha256_file
from app.cli import main
from planning.export import CSV_HEADER, SCHEMA, check_profile


def test_plan_writes_every_file_and_the_profile_carries_its_proof(exported_plan):
    names = {p.name for p in exported_plan.iterdir()}
    assert {"profile.csv", "profile.json", "profile.ros2.yaml", "plan.json", "history.csv", "cycle.png",
            "history.png", "pareto.png", "report.md"} <= names
    assert not [n for n in names if n.startswith(".")]  # no staging leftovers
    doc = json.loads((exported_plan / "profile.json").read_text())
    assert doc["schema"] == SCHEMA and doc["sha256"] == sha256_file(exported_plan / "profile.csv")
    assert doc["verification"]["passed"] is True and doc["verification"]["engine"] == "opensim"
    independent = doc["independent_verification"]  # OpenSim's own tools on model.osim (issue 14, point 1)
    assert independent["passed"] is True and independent["frames"] >= 24
    assert independent["max_difference"]["compression_relative"] <= 0.01
    assert independent["max_difference"]["targeted_activation"] <= 0.005
    assert "StaticOptimization + JointReaction" in independent["tool"]
    assert doc["units"] == {"time": "s", "force": "N"} and doc["rate_hz"] == 100
    for key in ("device", "limits", "targets", "predicted", "parameters", "provenance", "frame", "contact"):
        assert key in doc
    prov = doc["provenance"]
    assert prov["seed"] == 3 and len(prov["twin_sha256"]) == 64 and len(prov["plan_sha256"]) == 64
    assert prov["morphometry_sha256"] and prov["toolkit_version"]
    with open(exported_plan / "profile.csv") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == CSV_HEADER and len(rows) - 1 == doc["samples"] == 600
    forces = np.array(rows[1:], float)[:, 1:]
    assert np.linalg.norm(forces, axis=1).max() <= doc["device"]["max_force_N"]
    ros = yaml.safe_load((exported_plan / "profile.ros2.yaml").read_text())
    assert ros["joint_names"] == ["thorax_pad_fx", "thorax_pad_fy", "thorax_pad_fz"]
    assert len(ros["points"]) == 600 and ros["points"][150]["time_from_start"] == {"sec": 1, "nanosec": 500000000}
    assert ros["points"][150]["effort"] == pytest.approx(forces[150], abs=1e-6)
    history = list(csv.DictReader(open(exported_plan / "history.csv")))
    assert len(history) == 120 and "constraint.compression_N" in history[0]
    report = (exported_plan / "report.md").read_text()
    assert "multifidus" in report and "passed" in report


def test_check_accepts_the_export_and_refuses_any_tampering(exported_plan, tmp_path, capsys):
    assert check_profile(exported_plan / "profile.json") == []
    assert main(["check", str(exported_plan / "profile.json")]) == 0

    def copy(edit_csv=None, edit_doc=None, fix_checksum=False):
        target = tmp_path / f"case{len(list(tmp_path.iterdir()))}"
        target.mkdir()
        data = (exported_plan / "profile.csv").read_text()
        doc = json.loads((exported_plan / "profile.json").read_text())
        if edit_csv:
            data = edit_csv(data)
        if edit_doc:
            edit_doc(doc)
        (target / "profile.csv").write_text(data)
        if fix_checksum:
            doc["sha256"] = sha256_file(target / "profile.csv")
        (target / "profile.json").write_text(json.dumps(doc))
        return str(target / "profile.json")

    lines = (exported_plan / "profile.csv").read_text().splitlines()
    spiked = "\n".join(lines[:100] + [lines[100].split(",")[0] + ",149.0,0,0"] + lines[101:]) + "\n"
    assert main(["check", copy(edit_csv=lambda d: spiked)]) == 2  # checksum: one line, exit 2
    assert "checksum does not match" in capsys.readouterr().err
    assert main(["check", copy(edit_csv=lambda d: spiked, fix_checksum=True)]) == 1  # a rate jump
    assert "rate of change" in capsys.readouterr().err

    def unverified(doc):
        doc["verification"]["passed"] = False

    def breach(doc):
        doc["verification"]["peak"]["compression_N"]["L5-S1"] = 1e4

    def faster(doc):
        doc["rate_hz"] = 200

    def no_independent(doc):
        del doc["independent_verification"]

    def independent_failed(doc):
        doc["independent_verification"]["passed"] = False

    def independent_breach(doc):
        doc["independent_verification"]["peak"]["ap_shear_N"]["L5-S1"] = 5e3

    def weak_unverified(doc):
        doc["uncertainty"]["patients"]["weakest plausible"]["independent_verification"]["passed"] = False

    def worst_case_breach(doc):
        doc["uncertainty"]["worst_case_peak"]["compression_N"]["L4-L5"] = 9e3

    def no_band(doc):
        del doc["uncertainty"]

    for edit, message in ((weak_unverified, "weakest plausible patient's independent verification"),
                          (worst_case_breach, "worst case: verified compression_N at L4-L5"),
                          (no_band, "no record of the measurement uncertainty"),
                          (unverified, "verification did not pass"), (breach, "exceeds its limit"),
                          (faster, "not at 200 Hz"), (no_independent, "no independent verification"),
                          (independent_failed, "independent verification (OpenSim) did not pass"),
                          (independent_breach, "independent verification: verified ap_shear_N at L5-S1")):
        assert main(["check", copy(edit_doc=edit)]) == 1
        assert message in capsys.readouterr().err


def test_whatif_reproduces_the_plan_and_flags_a_scaled_profile(exported_plan, loaded_twin, tmp_path, capsys):
    from planning.whatif import what_if

    doc = json.loads((exported_plan / "profile.json").read_text())
    same = what_if(loaded_twin, exported_plan / "profile.json")
    for side in ("left", "right"):
        assert same.mean_activation["multifidus"][side] == pytest.approx(
            doc["predicted"]["mean_activation"]["multifidus"][side], abs=1e-9)
    assert same.evaluation.peaks()["compression_N"] == pytest.approx(doc["predicted"]["peak"]["compression_N"])
    assert same.breaches == () and same.device_problems == ()

    picture = tmp_path / "whatif.png"
    assert main(["whatif", str(loaded_twin.directory), "--profile", str(exported_plan / "profile.json"),
                 "--scale", "1.6", "--limits", "compression_N=1200", "--out", str(picture)]) == 0
    out = capsys.readouterr().out
    assert "DEVICE: force" in out and "LIMIT:" in out and "compression" in out
    assert picture.stat().st_size > 10_000
    stronger = what_if(loaded_twin, exported_plan / "profile.json", scale=1.6)
    assert stronger.mean_activation["multifidus"]["left"] > same.mean_activation["multifidus"]["left"]


@pytest.mark.parametrize("args, message", [
    (["--targets", "multifidus=0.7", "--limits", "multifidus=0.5"], "above its own cap"),
    (["--targets", "gluteus=0.2"], "unknown muscle group"),
    (["--targets", "multifidus=lots"], "not a number"),
    (["--targets", "multifidus=0.3", "--limits", "compression_N=900", "--trials", "15"], "binds"),
])
def test_plan_faults_are_one_line_exit_2_and_write_nothing(loaded_twin, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    code = main(["plan", str(loaded_twin.directory), "--exercise", "trunk_extension", *args, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("edit", ["nan_sample", "inf_sample", "nan_peak", "nan_limit"])
def test_check_refuses_non_finite_samples_and_fields_even_with_a_recomputed_checksum(exported_plan, tmp_path,
                                                                                        capsys, edit):
    target = tmp_path / edit
    target.mkdir()
    lines = (exported_plan / "profile.csv").read_text().splitlines()
    doc = json.loads((exported_plan / "profile.json").read_text())
    if edit in ("nan_sample", "inf_sample"):
        time_s = lines[200].split(",")[0]
        lines[200] = f"{time_s},{'nan' if edit == 'nan_sample' else 'inf'},0,0"
    elif edit == "nan_peak":
        doc["verification"]["peak"]["compression_N"]["L4-L5"] = float("nan")
    else:
        doc["limits"]["ap_shear_N"]["L5-S1"] = float("inf")
    (target / "profile.csv").write_text("\n".join(lines) + "\n")
    doc["sha256"] = sha256_file(target / "profile.csv")
    (target / "profile.json").write_text(json.dumps(doc))  # Python writes NaN and Infinity tokens
    problems = check_profile(target / "profile.json")
    assert any("not finite" in p or "not a finite number" in p for p in problems), problems
    assert main(["check", str(target / "profile.json")]) == 1
    assert "must not go to a device" in capsys.readouterr().err


def test_the_exporter_refuses_non_finite_samples():
    from types import SimpleNamespace

    from lumbar_twin.errors import LumbarTwinError
    from planning.export import profile_document

    forces = np.zeros((10, 3))
    forces[4, 1] = np.nan
    result = SimpleNamespace(verification=SimpleNamespace(passed=True), independent=SimpleNamespace(passed=True),
                             times_s=np.arange(10) / 100.0, forces_N=forces)
    with pytest.raises(LumbarTwinError, match="not a finite number"):
        profile_document(result, b"")


def test_the_exporter_refuses_a_plan_without_the_independent_verification(loaded_twin, tmp_path):
    from lumbar_twin.errors import LumbarTwinError
    from planning.planner import make_plan, plan_for
    from planning.report import write_plan

    plan = plan_for(loaded_twin, exercise="isometric_hold", targets={"multifidus": 0.2}, search={"trials": 8})
    result = make_plan(loaded_twin, plan, opensim_verification=False)
    assert result.verification.passed and result.independent is None
    with pytest.raises(LumbarTwinError, match="OpenSim's own StaticOptimization and JointReaction did not verify"):
        write_plan(result, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())

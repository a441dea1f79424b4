"""What reaches the device, attacked (issue 14 red team): edited, forged or mismatched device files
must be refused by `check` (exit 1 with the problems, or exit 2 with one line for an unreadable
file), never passed as OK. Each case below got through `check` before this file existed."""
import json
import shutil

import numpy as np
import pytest

from app.cli import main
from lumbar_twin.fileio import sha256_bytes
from planning.export import plan_record_sha256, profile_csv
from planning.profile import Device, Profile


def _copy(exported_plan, tmp_path, csv_edit=None, doc_edit=None, ros_edit=None, fix_checksums=True):
    """The exported files in a fresh folder, edited; checksums recomputed as a careful editor would."""
    target = tmp_path / f"case{len(list(tmp_path.iterdir()))}"
    target.mkdir()
    data = (exported_plan / "profile.csv").read_text()
    doc = json.loads((exported_plan / "profile.json").read_text())
    ros = (exported_plan / "profile.ros2.yaml").read_text()
    data = csv_edit(data) if csv_edit else data
    ros = ros_edit(ros) if ros_edit else ros
    if doc_edit:
        doc_edit(doc)
    if fix_checksums:
        doc["sha256"] = sha256_bytes(data.encode())
        doc["ros2"]["sha256"] = sha256_bytes(ros.encode())
    (target / "profile.csv").write_text(data)
    (target / "profile.ros2.yaml").write_text(ros)
    (target / "profile.json").write_text(json.dumps(doc))
    return str(target / "profile.json")


def _rows(edit):
    def apply(text):
        header, *body = text.splitlines()
        return "\n".join([header, *edit(body)]) + "\n"
    return apply


def _scaled(factor, only=None):
    def edit(body):
        out = []
        for i, row in enumerate(body):
            t, *values = row.split(",")
            s = factor if only is None or i == only else 1.0
            out.append(",".join([t, *(f"{float(v) * s:.6f}" for v in values)]))
        return out
    return edit


def _check(path, capsys, *extra):
    rc = main(["check", path, *extra])
    return rc, capsys.readouterr().err


def test_the_export_itself_passes_check_with_and_without_its_twin(exported_plan, loaded_twin, capsys):
    assert _check(str(exported_plan / "profile.json"), capsys)[0] == 0
    assert _check(str(exported_plan / "profile.json"), capsys, "--twin", str(loaded_twin.directory))[0] == 0


@pytest.mark.parametrize("name, csv_edit, doc_edit, message", [
    ("one sample 0.1 % lower", _rows(_scaled(0.999, only=300)), None, "not those of the verified parameters"),
    ("every sample halved", _rows(_scaled(0.5)), None, "not those of the verified parameters"),
    ("the last sample dropped and the count edited", _rows(lambda b: b[:-1]), lambda d: d.update(samples=599),
     "a 6 s cycle at 100 Hz has 600 samples"),
    ("the cycle halved in profile.json", None, lambda d: d.update(cycle_s=3.0), "has 300 samples"),
    ("the knots doubled", None, lambda d: d.update(parameters=[2 * k for k in d["parameters"]]),
     "not those of the verified parameters"),
    ("force in pounds", None, lambda d: d["units"].update(force="lbf"), "units must be"),
    ("time in ms", None, lambda d: d["units"].update(time="ms"), "units must be"),
    ("another frame", None, lambda d: d.update(frame="ground frame"), "force frame must be"),
    ("the device maximum raised", None, lambda d: d["device"].update(max_force_N=1e9),
     "device is not what was planned"),
    ("the limits raised", None, lambda d: d["limits"].update(compression_N={k: 1e9 for k in d["limits"]["compression_N"]}),
     "limits is not what was planned"),
    ("an activation cap removed", None, lambda d: d["limits"].update(activation={}), "limits is not what was planned"),
    ("another target", None, lambda d: d.update(targets={"multifidus": 0.6}), "targets is not what was planned"),
    ("provenance says --uncertainty none", None, lambda d: d["provenance"].update(uncertainty="none"),
     "the uncertainty section says 'morphometry'"),
    ("verification 'passed' with problems", None,
     lambda d: d["verification"].update(problems=["L5-S1 compression 3100 N exceeds the 2500 N limit"]),
     "claims it passed but lists problems"),
    ("OpenSim 'passed' with problems", None, lambda d: d["independent_verification"].update(problems=["x"]),
     "claims it passed but lists problems"),
    ("a search-engine peak over its limit", None,
     lambda d: d["verification"]["search_engine_peak"]["compression_N"].update({"L5-S1": 1e5}),
     "search engine: verified compression_N at L5-S1"),
    ("OpenSim disagreeing by 5 % yet 'passed'", None,
     lambda d: d["independent_verification"]["max_difference"].update(compression_relative=0.05),
     "compression relative difference 0.05 is not within 0.01"),
    ("OpenSim's tolerance loosened to match", None,
     lambda d: (d["independent_verification"]["max_difference"].update(targeted_activation=0.05),
                d["independent_verification"]["tolerance"].update(targeted_activation=0.1)),
     "targeted activation difference 0.05 is not within 0.005"),
    ("OpenSim re-solved 3 frames", None, lambda d: d["independent_verification"].update(frames=3),
     "3 frames re-solved, fewer than 24"),
    ("a plausible patient's OpenSim disagreeing", None,
     lambda d: d["uncertainty"]["patients"]["weakest plausible"]["independent_verification"]["max_difference"]
     .update(compression_relative=0.2), "weakest plausible patient's independent verification: OpenSim"),
    ("a peak that is not a number", None, lambda d: d["verification"]["peak"]["compression_N"].update({"L5-S1": "low"}),
     "is not a number"),
])
def test_check_refuses_edited_profiles_with_recomputed_checksums(exported_plan, tmp_path, capsys, name, csv_edit,
                                                                 doc_edit, message):
    rc, err = _check(_copy(exported_plan, tmp_path, csv_edit, doc_edit), capsys)
    assert rc == 1, name
    assert message in err, err


@pytest.mark.parametrize("name, csv_edit, doc_edit, message", [
    ("the CSV path leaves the folder", None, lambda d: d.update(csv="../profile.csv"), "must name a file beside"),
    ("a fifth column", _rows(lambda b: [r + ",0" for r in b]), None, "line 2 has 5 fields, expected 4"),
    ("a blank line", _rows(lambda b: b[:5] + [""] + b[5:]), None, "line 7 has 0 fields"),
    ("verification is a list", None, lambda d: d.update(verification=[]), "must be records"),
    ("a zero push direction", None, lambda d: d["device"].update(push_direction=[0, 0, 0]), "device.push_direction"),
    ("a 2-vector push direction", None, lambda d: d["device"].update(push_direction=[1, 0]), "device.push_direction"),
    ("a device limit as text", None, lambda d: d["device"].update(max_force_N="150"), "must be numbers"),
])
def test_check_says_one_line_and_exit_2_for_a_malformed_profile(exported_plan, tmp_path, capsys, name, csv_edit,
                                                                doc_edit, message):
    rc, err = _check(_copy(exported_plan, tmp_path, csv_edit, doc_edit), capsys)
    assert rc == 2, name
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_check_holds_the_ros2_trajectory_to_the_csv(exported_plan, tmp_path, capsys):
    first_effort = next(line for line in (exported_plan / "profile.ros2.yaml").read_text().splitlines()
                        if line.startswith("  - "))

    def spike(text):
        return text.replace(first_effort, "  - 149.0", 1)

    rc, err = _check(_copy(exported_plan, tmp_path, ros_edit=spike, fix_checksums=False), capsys)
    assert rc == 2 and "profile.ros2.yaml: checksum does not match" in err
    rc, err = _check(_copy(exported_plan, tmp_path, ros_edit=spike), capsys)  # its checksum recomputed too
    assert rc == 1 and "does not hold the same samples as the CSV" in err
    rc, err = _check(_copy(exported_plan, tmp_path, doc_edit=lambda d: d.pop("ros2"), fix_checksums=False), capsys)
    assert rc == 1 and "not recorded in it" in err


def test_check_twin_refuses_another_twin_or_swapped_model_files(exported_plan, loaded_twin, tmp_path, capsys):
    profile = str(exported_plan / "profile.json")
    other = tmp_path / "other"
    shutil.copytree(loaded_twin.directory, other)
    twin_json = json.loads((other / "twin.json").read_text())
    twin_json["patient"]["mass_kg"] += 1.0  # another patient, same spec: only the identity differs
    (other / "twin.json").write_text(json.dumps(twin_json))
    rc, err = _check(profile, capsys, "--twin", str(other))
    assert rc == 1 and "planned for another twin" in err
    shutil.copy(loaded_twin.directory / "twin.json", other / "twin.json")
    for name in ("model.osim", "model.xml"):
        with open(other / name, "a") as handle:  # a different file of the same twin
            handle.write("\n<!-- swapped -->\n")
    rc, err = _check(profile, capsys, "--twin", str(other))
    # The twin itself refuses to load (twin.json records its model files' sha256).
    assert rc == 2 and "model.osim" in err and "sha256 differs from twin.json" in err


def test_check_twin_re_simulates_a_consistent_forgery_that_check_alone_cannot_see(exported_plan, loaded_twin,
                                                                                   tmp_path, capsys):
    """A forger who rewrites the knots, the device and the plan hash consistently keeps the old,
    passing peaks on record: only re-simulating the samples on the twin shows the breach."""
    doc = json.loads((exported_plan / "profile.json").read_text())
    doc["parameters"] = [4.0 * k for k in doc["parameters"]]
    for record in (doc["device"], doc["plan"]["device"]):
        record.update(max_force_N=1000.0, max_rate_N_per_s=3000.0)
    doc["provenance"]["plan_sha256"] = plan_record_sha256(doc["plan"])
    device = Device(1000.0, 3000.0, doc["device"]["cone_deg"], doc["rate_hz"])
    profile = Profile(doc["contact"], doc["cycle_s"], tuple(doc["parameters"]), doc["direction"]["tilt_deg"],
                      doc["direction"]["azimuth_deg"])
    times, forces = profile.samples(device, doc["device"]["push_direction"])
    assert np.linalg.norm(forces, axis=1).max() > 300.0
    data = profile_csv(times, forces)
    doc["sha256"] = sha256_bytes(data)
    doc.pop("ros2")
    (tmp_path / "profile.csv").write_bytes(data)
    (tmp_path / "profile.json").write_text(json.dumps(doc))
    assert _check(str(tmp_path / "profile.json"), capsys)[0] == 0  # self-consistent: the limit of a file check
    rc, err = _check(str(tmp_path / "profile.json"), capsys, "--twin", str(loaded_twin.directory))
    assert rc == 1 and "re-simulated in MuJoCo (point estimate): L5-S1 compression" in err, err


# -- plan inputs: a clear refusal before any search, never a limit switched off ----------------

@pytest.mark.parametrize("section, values, field, message", [
    ("limits", {"compression_N": float("inf")}, "limits.compression_N.L1-L2", "positive finite"),
    ("limits", {"compression_N": 1e12}, "limits.compression_N.L1-L2", "NIOSH maximum permissible"),
    ("limits", {"ap_shear_N": 1500}, "limits.ap_shear_N.L1-L2", "Gallagher & Marras"),
    ("limits", {"reserve_share": 5}, "limits.reserve_share", "statics flags"),
    ("limits", {"reserve_share": float("inf")}, "limits.reserve_share", "positive finite"),
    ("device", {"max_force_N": float("inf")}, "device.max_force_N", "positive finite"),
    ("device", {"max_rate_N_per_s": float("inf")}, "device.max_rate_N_per_s", "positive finite"),
    ("device", {"rate_hz": 1}, "device.rate_hz", "fewer than the search's 30 frames"),
    ("device", {"rate_hz": 1e7}, "device.rate_hz", "at most 1000 Hz"),
])
def test_a_plan_that_would_switch_a_limit_off_is_refused_up_front(loaded_twin, section, values, field, message):
    """Before: inf limits ran the whole search and were refused only by the exporter, 1e12 N and a
    reserve share of 5 were exported, infinite device limits and 1 Hz crashed with a traceback and
    10 MHz ran out of memory."""
    from lumbar_twin.errors import InputError
    from planning.plan import resolve_plan

    document = {"exercise": "trunk_extension", "targets": {"multifidus": 0.25}, section: values}
    with pytest.raises(InputError) as caught:
        resolve_plan(loaded_twin.spec, document)
    assert caught.value.field == field and message in str(caught.value)


def test_the_patient_file_limits_meet_the_same_ceilings(loaded_twin):
    from lumbar_twin.errors import InputError
    from planning.plan import resolve_plan

    with pytest.raises(InputError, match="patient limits.compression_N.L5-S1.*NIOSH"):
        resolve_plan(loaded_twin.spec, {"exercise": "trunk_extension", "targets": {"multifidus": 0.25}},
                     {"compression_N": {"L5-S1": 9000}})


@pytest.mark.parametrize("entry", [
    {"cycle_s": float("inf"), "keyframes": [{"phase": 0.0}, {"phase": 1.0}]},
    {"cycle_s": 6.0, "keyframes": [{"phase": 0.0}, {"phase": float("nan")}, {"phase": 1.0}]},
    {"cycle_s": 6.0, "keyframes": [{"phase": 0.0, "flexion": 10}, {"phase": 0.5, "flexion": float("nan")},
                                   {"phase": 1.0, "flexion": 10}]},
])
def test_an_exercise_with_non_finite_values_is_refused(tmp_path, entry):
    import yaml

    from lumbar_twin.errors import InputError
    from planning.exercise import load_exercise

    library = tmp_path / "exercises.yaml"
    library.write_text(yaml.safe_dump({"schema": "lumbar-twin/exercises@1", "exercises": {"bad": entry}}))
    with pytest.raises(InputError, match="finite"):
        load_exercise("bad", library)


def test_the_exporter_refuses_samples_that_are_not_the_chosen_parameters(loaded_twin, tmp_path):
    """profile.json records the parameters; the CSV must be their samples, or `check` (which
    rebuilds them) and the record disagree about what was verified."""
    from types import SimpleNamespace

    from lumbar_twin.errors import LumbarTwinError
    from planning.planner import make_plan, plan_for
    from planning.report import write_plan

    plan = plan_for(loaded_twin, exercise="isometric_hold", targets={"multifidus": 0.2}, search={"trials": 6},
                    uncertainty="none")
    result = make_plan(loaded_twin, plan, opensim_verification=False)
    result.independent = SimpleNamespace(passed=True)  # stands in for OpenSim's re-solve (not the point here)
    result.forces_N = result.forces_N * 1.01
    with pytest.raises(LumbarTwinError, match="not those of the verified parameters"):
        write_plan(result, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_checks_requirements_on_opensim_are_opensim_verifys_own():
    from planning import export, opensim_verify

    assert export.COMPRESSION_TOLERANCE == opensim_verify.COMPRESSION_TOLERANCE
    assert export.ACTIVATION_TOLERANCE == opensim_verify.ACTIVATION_TOLERANCE
    assert export.UNIFORM_FRAMES_REQUIRED == opensim_verify.UNIFORM_FRAMES
    assert export.BAND_FRAMES_REQUIRED == opensim_verify.BAND_UNIFORM_FRAMES


def test_whatif_says_when_the_profile_was_planned_for_another_twin(exported_plan, loaded_twin, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(loaded_twin.directory, other)
    twin_json = json.loads((other / "twin.json").read_text())
    twin_json["patient"]["mass_kg"] += 1.0
    (other / "twin.json").write_text(json.dumps(twin_json))
    profile = str(exported_plan / "profile.json")
    assert main(["whatif", str(other), "--profile", profile, "--out", str(tmp_path / "a.png")]) == 0
    assert "planned for another twin" in capsys.readouterr().out
    assert main(["whatif", str(loaded_twin.directory), "--profile", profile, "--out", str(tmp_path / "b.png")]) == 0
    assert "another twin" not in capsys.readouterr().out


@pytest.mark.parametrize("document, field", [
    ({"exercise": "trunk_extension", "targets": {"multifidus": 0.2}, "device": "fast"}, "device"),
    ({"exercise": "trunk_extension", "targets": {"multifidus": 0.2}, "search": [200]}, "search"),
    ({"exercise": ["trunk_extension"], "targets": {"multifidus": 0.2}}, "exercise"),
    ({"exercise": "trunk_extension", "contact": {"pad": 1}, "targets": {"multifidus": 0.2}}, "contact"),
])
def test_a_plan_file_with_sections_of_the_wrong_kind_is_one_line_not_a_traceback(loaded_twin, tmp_path, capsys,
                                                                                  document, field):
    """Before: `device: fast` and `exercise: [..]` ended in TypeError tracebacks (exit 1)."""
    import yaml

    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(yaml.safe_dump(document))
    out = tmp_path / "out"
    assert main(["plan", str(loaded_twin.directory), "--plan", str(plan_file), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"field '{field}'" in err and "Traceback" not in err and not out.exists()


def test_limit_breaches_name_nan_loads_instead_of_passing_them(loaded_twin):
    """NaN compares false with every limit: whatif (and anything else using limit_breaches) said
    nothing was broken for a NaN prediction before."""
    from planning.evaluate import Evaluator, precompute
    from planning.exercise import load_exercise
    from planning.plan import resolve_plan
    from planning.profile import sample_times
    from planning.verify import limit_breaches

    spec = loaded_twin.spec
    plan = resolve_plan(spec, {"exercise": "isometric_hold", "targets": {"multifidus": 0.2},
                               "search": {"eval_frames": 6}})
    times = sample_times(load_exercise(plan.exercise).cycle_s, plan.device.rate_hz)[::100]
    evaluation = Evaluator(spec, precompute(spec, load_exercise(plan.exercise), times, plan.contact))(
        np.zeros((len(times), 3)))
    assert limit_breaches(evaluation, plan) == []
    evaluation.compression_N[2, 4] = np.nan
    assert limit_breaches(evaluation, plan) == ["non-finite values (NaN or inf) in compression_N"]


def test_whatif_and_simulate_refuse_infinite_inputs(exported_plan, loaded_twin, tmp_path, capsys):
    profile = str(exported_plan / "profile.json")
    assert main(["whatif", str(loaded_twin.directory), "--profile", profile, "--scale", "inf",
                 "--out", str(tmp_path / "w.png")]) == 2
    assert "--scale: inf is not a scale factor (a finite number" in capsys.readouterr().err
    assert not (tmp_path / "w.png").exists()
    with pytest.raises(SystemExit):  # argparse: one usage line, exit 2
        main(["simulate", str(loaded_twin.directory), "--force", "contact=thorax_pad,fx=inf"])
    assert "must be finite numbers" in capsys.readouterr().err

"""Plan files and their checks (issue 5, items 1 and 3)."""
import numpy as np
import pytest

from lumbar_twin.errors import InputError
from planning.exercise import exercise_names, load_exercise
from planning.plan import command_line_overlay, merge, read_plan_file, resolve_plan


def test_library_has_the_four_exercises_and_each_cycle_closes(template):
    assert {"trunk_extension", "isometric_hold", "lateral_bend", "axial_rotation"} <= set(exercise_names())
    for name in exercise_names():
        ex = load_exercise(name)
        start, end = ex.angles_deg(np.array([0.0])), ex.angles_deg(np.array([ex.cycle_s - 1e-9]))
        for kind in start:
            assert start[kind][0] == pytest.approx(end[kind][0], abs=1e-6)
        ex.poses(template, np.linspace(0, ex.cycle_s, 25))  # every posture within the model's ranges


def test_trunk_extension_goes_from_30_deg_to_upright_and_back():
    ex = load_exercise("trunk_extension")
    flexion = ex.angles_deg(np.array([0.0, 1.5, 3.0, 4.5]))["flexion"]
    assert flexion == pytest.approx([30.0, 15.0, 0.0, 15.0])


def test_lateral_bend_goes_to_both_sides():
    angles = load_exercise("lateral_bend").angles_deg(np.linspace(0, 8, 161))["lateral"]
    assert angles.max() == pytest.approx(20.0) and angles.min() == pytest.approx(-20.0)


def test_defaults_come_from_the_patient_then_the_literature(template):
    plan = resolve_plan(template, {"exercise": "isometric_hold", "targets": {"multifidus": 0.2}},
                        patient_limits={"compression_N": 2500})
    assert plan.limits.compression_N["L5-S1"] == 2500  # the patient file's
    assert plan.limits.ap_shear_N["L4-L5"] == 1000  # Gallagher & Marras 2012
    assert plan.contact == "thorax_pad" and plan.search.trials == 200
    nothing = resolve_plan(template, {"exercise": "isometric_hold", "targets": {"multifidus": 0.2}})
    assert nothing.limits.compression_N["L1-L2"] == 3400  # NIOSH


def test_command_line_overrides_the_plan_file(template, tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text("exercise: trunk_extension\ntargets: {multifidus: 0.3}\n"
                    "limits: {compression_N: 2000, ap_shear_N: 600}\ndevice: {max_force_N: 120}\n")
    overlay = command_line_overlay("erector_spinae.left=0.2", "L5-S1.compression_N=1800,psoas=0.3", "rate_hz=200")
    plan = resolve_plan(template, merge(read_plan_file(path), overlay), source=path)
    assert [(t.group, t.side, t.value) for t in plan.targets] == [("erector_spinae", "left", 0.2)]
    assert plan.limits.compression_N["L5-S1"] == 1800 and plan.limits.compression_N["L1-L2"] == 2000
    assert plan.limits.ap_shear_N["L1-L2"] == 600 and plan.limits.activation == {"psoas": 0.3}
    assert plan.device.max_force_N == 120 and plan.device.rate_hz == 200


@pytest.mark.parametrize("document, message", [
    ({"exercise": "trunk_extension", "targets": {"multifidus": 0.7}, "limits": {"activation": {"multifidus": 0.5}}},
     "above its own cap"),
    ({"exercise": "trunk_extension", "targets": {"gluteus": 0.2}}, "unknown muscle group 'gluteus'"),
    ({"exercise": "trunk_extension", "targets": {"multifidus": 1.5}}, "activation target is in"),
    ({"exercise": "trunk_extension", "targets": {}}, "no targets"),
    ({"exercise": "handstand", "targets": {"multifidus": 0.2}}, "no exercise 'handstand'"),
    ({"exercise": "trunk_extension", "targets": {"multifidus": 0.2}, "contact": "hands"}, "not a pad"),
    ({"exercise": "trunk_extension", "targets": {"multifidus": 0.2}, "limits": {"compression_N": {"L9-L10": 1}}},
     "unknown levels"),
    ({"exercise": "trunk_extension", "targets": {"multifidus": 0.2}, "limits": {"compression_N": -5}}, "positive"),
    ({"exercise": "trunk_extension", "targets": {"multifidus": {"value": 0.2, "phase": [0.8, 0.2]}}}, "phase"),
    ({"exercise": "trunk_extension", "targets": {"multifidus": 0.2}, "search": {"trials": 2.5}}, "whole number"),
    ({"exercise": "trunk_extension", "targets": {"multifidus": 0.2}, "search": {"mode": "fast"}}, "search.mode"),
])
def test_inconsistent_plans_get_one_clear_line(template, document, message):
    with pytest.raises(InputError, match=message):
        resolve_plan(template, document)


def test_unreadable_plan_file_names_the_file(tmp_path):
    bad = tmp_path / "plan.yaml"
    bad.write_text("targets: [unclosed\n")
    with pytest.raises(InputError, match="plan.yaml: not valid YAML"):
        read_plan_file(bad)
    with pytest.raises(InputError, match="cannot read"):
        read_plan_file(tmp_path / "missing.yaml")

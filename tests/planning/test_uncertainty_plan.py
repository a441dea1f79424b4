"""Limits hold for the weakest and strongest plausible patient too (issue 14, point 2)."""
import json

import pytest

from planning.evaluate import Evaluator, precompute
from planning.opensim_verify import BAND_UNIFORM_FRAMES
from planning.planner import make_plan, plan_for
from planning.profile import sample_times
from planning.verify import verify

#: A psoas cap between the point estimate's busiest psoas fascicle under the point-only plan
#: (0.238) and the weakest plausible patient's under the same profile (0.27, measured).
CAP = 0.26


def _plan(twin, uncertainty, trials=30):
    return plan_for(twin, exercise="trunk_extension", targets={"multifidus": 0.25},
                    limits={"activation": {"psoas": CAP}}, search={"trials": trials}, uncertainty=uncertainty)


@pytest.mark.slow
def test_a_profile_safe_at_the_point_estimate_but_not_for_the_weakest_plausible_patient_is_not_exported(loaded_twin):
    spec = loaded_twin.spec
    point_only = make_plan(loaded_twin, _plan(loaded_twin, "none"), opensim_verification=False)
    psoas = point_only.prediction.groups.index("psoas")
    assert point_only.verification.passed  # passes at the point estimate ...
    assert point_only.prediction.group_peak[:, psoas].max() <= CAP

    weakest = loaded_twin.plausible_specs()["weakest plausible"]
    exercise, plan = point_only.exercise, _plan(loaded_twin, "morphometry")
    times = sample_times(exercise.cycle_s, plan.device.rate_hz)
    full = precompute(spec, exercise, times, plan.contact)
    other = precompute(spec, exercise, times, plan.contact, "opensim")
    forces = point_only.forces_N
    weak_eval = Evaluator(weakest, full)(forces)
    assert weak_eval.group_peak[:, psoas].max() > CAP  # ... but breaks the cap for the weakest plausible patient
    push = spec.contact(plan.contact).push_direction
    checked = verify(plan, forces, push, Evaluator(spec, other)(forces), "opensim", Evaluator(spec, full)(forces),
                     "mujoco", band={"weakest plausible": (Evaluator(weakest, other)(forces), weak_eval)})
    assert not checked.passed
    assert any("weakest plausible patient" in p and "psoas fascicle" in p for p in checked.problems)

    # With the band the search itself keeps the cap for every plausible patient, and the chosen
    # profile is a different, gentler one; the point-only profile is never the one exported.
    banded = make_plan(loaded_twin, plan, opensim_verification=False)
    for label, (o, s) in banded.verification.band.items():
        assert o.group_peak[:, psoas].max() <= CAP and s.group_peak[:, psoas].max() <= CAP, label
    assert banded.chosen.profile != point_only.chosen.profile
    assert all(c.constraint_patient for c in banded.search.candidates)


def test_uncertainty_none_is_written_into_the_profile_and_check_refuses_it_for_a_device(loaded_twin, tmp_path, capsys):
    from app.cli import main

    out = tmp_path / "plan"
    assert main(["plan", str(loaded_twin.directory), "--exercise", "isometric_hold", "--targets", "multifidus=0.2",
                 "--trials", "12", "--uncertainty", "none", "--out", str(out)]) == 0
    assert "measurement uncertainty not carried" in capsys.readouterr().out
    doc = json.loads((out / "profile.json").read_text())
    assert doc["uncertainty"]["mode"] == "none" and doc["provenance"]["uncertainty"] == "none"
    assert json.loads((out / "plan.json").read_text())["uncertainty"] == "none"
    assert "**Not carried**" in (out / "report.md").read_text()
    assert main(["check", str(out / "profile.json")]) == 1
    assert "point estimate only (--uncertainty none)" in capsys.readouterr().err


def test_the_exported_profile_records_the_band_and_worst_case_peaks(exported_plan):
    from planning.export import check_profile

    doc = json.loads((exported_plan / "profile.json").read_text())
    band = doc["uncertainty"]
    assert band["mode"] == "morphometry" and band["methods"] == {"csa": "watershed", "fat_fraction": "watershed"}
    lo, hi = band["muscle_force_ratio"]["weakest plausible"]["multifidus"]
    assert 0.75 < lo <= hi < 0.9
    for label in ("weakest plausible", "strongest plausible"):
        entry = band["patients"][label]
        independent = entry["independent_verification"]
        assert independent["passed"] is True and independent["patient"] == label
        # Six frames over the cycle and every peak frame of this patient: OpenSim's peaks are
        # the claimed ones (within the 1 % tolerance), so the frames where limits bind were re-solved.
        assert independent["frames"] > BAND_UNIFORM_FRAMES
        for level, value in entry["peak"]["compression_N"].items():
            assert independent["peak"]["compression_N"][level] == pytest.approx(value, rel=0.01)
        for level, value in entry["peak"]["compression_N"].items():
            assert value <= band["worst_case_peak"]["compression_N"][level] <= doc["limits"]["compression_N"][level]
    assert band["worst_case_peak"]["compression_N"]["L5-S1"] >= doc["verification"]["peak"]["compression_N"]["L5-S1"]
    assert "Measurement uncertainty" in (exported_plan / "report.md").read_text()
    assert check_profile(exported_plan / "profile.json") == []

"""Plans on the sample twin: quality, verification, repeatability, storage (issue 5, items 4, 5, 9).

Only the quality test runs OpenSim's independent re-solve (about 3 s a plan; its own tests are
in test_opensim_verify.py and test_export_cli.py); the others test search logic and pass
`opensim_verification=False`."""
import numpy as np
import pytest

from planning.planner import Infeasible, make_plan, plan_for
from planning.report import ON_TARGET
from twin.spec import LEVELS

# One reachable target per exercise: what the pad (pushing the back forwards) can bring about.
QUALITY_CASES = [
    ("trunk_extension", {"multifidus": 0.25}),
    ("isometric_hold", {"multifidus": 0.25}),
    # the obliques now carry more of the bend (fibres on their working range, docs/model.md): the
    # sides' erector spinae means stay about 0.03 apart, 0.144/0.113 for a target of 0.13
    ("lateral_bend", {"erector_spinae": 0.13}),
    ("axial_rotation", {"multifidus": 0.15}),
]


@pytest.mark.slow
@pytest.mark.parametrize("exercise, targets", QUALITY_CASES)
def test_each_exercise_reaches_its_target_on_both_sides_within_the_limits(loaded_twin, exercise, targets):
    result = make_plan(loaded_twin, plan_for(loaded_twin, exercise=exercise, targets=targets, search={"seed": 0}))
    for label, target in targets.items():
        for side in ("left", "right"):
            assert abs(result.mean_activation()[label][side] - target) <= ON_TARGET, (label, side)
    v = result.verification
    assert v.passed and v.engine == "opensim"
    assert result.independent.passed and len(result.independent.frames) >= 24  # OpenSim's own tools
    limits = result.plan.limits
    for engine_peaks in (v.peak, v.search_peak):
        for level in LEVELS:
            assert engine_peaks["compression_N"][level] <= limits.compression_N[level]
            assert engine_peaks["ap_shear_N"][level] <= limits.ap_shear_N[level]
    assert v.max_engine_difference["compression_N"] < 1.0  # N: the two engines are the same model
    # The robot does work: without it the target is not met.
    free = result.verification.search_evaluation  # noqa: F841  (kept for reading the failure)
    assert np.linalg.norm(result.forces_N, axis=1).max() > 5.0


@pytest.mark.slow
def test_a_seed_repeats_a_plan_exactly(loaded_twin):
    plan = plan_for(loaded_twin, exercise="isometric_hold", targets={"multifidus": 0.2}, search={"trials": 25, "seed": 11})
    first = make_plan(loaded_twin, plan, opensim_verification=False)
    second = make_plan(loaded_twin, plan, opensim_verification=False)
    assert first.chosen.profile == second.chosen.profile
    assert np.array_equal(first.forces_N, second.forces_N)
    other = make_plan(loaded_twin, plan_for(loaded_twin, exercise="isometric_hold", targets={"multifidus": 0.2},
                                            search={"trials": 25, "seed": 12}), opensim_verification=False)
    assert other.chosen.profile != first.chosen.profile


@pytest.mark.slow
def test_no_feasible_trial_names_the_binding_limit(loaded_twin):
    plan = plan_for(loaded_twin, exercise="trunk_extension", targets={"multifidus": 0.3},
                    limits={"compression_N": 900}, search={"trials": 20})
    with pytest.raises(Infeasible, match=r"compression \(limit 900 N\) binds.*nothing exported"):
        make_plan(loaded_twin, plan)


@pytest.mark.slow
def test_an_activation_cap_holds_as_a_hard_constraint(loaded_twin):
    """Every erector spinae fascicle must stay under 0.2 while multifidus is pushed up: the cap wins
    (at the point estimate; the band's own test is test_uncertainty_plan.py)."""
    free = make_plan(loaded_twin, plan_for(loaded_twin, exercise="isometric_hold", targets={"multifidus": 0.3},
                                           search={"trials": 60}, uncertainty="none"),
                     opensim_verification=False)
    es = free.prediction.groups.index("erector_spinae")
    assert min(free.mean_activation()["multifidus"].values()) > 0.29  # reachable without the cap
    assert free.prediction.group_peak[:, es].max() > 0.25  # ... with an erector spinae fascicle above it
    plan = plan_for(loaded_twin, exercise="isometric_hold", targets={"multifidus": 0.3},
                    limits={"activation": {"erector_spinae": 0.2}}, search={"trials": 60}, uncertainty="none")
    result = make_plan(loaded_twin, plan, opensim_verification=False)
    for evaluation in (result.verification.evaluation, result.prediction):
        assert evaluation.group_peak[:, es].max() <= 0.2
    assert max(result.mean_activation()["multifidus"].values()) < 0.29  # the target gave way, not the cap


@pytest.mark.slow
def test_one_fascicle_over_its_cap_makes_the_plan_infeasible(loaded_twin):
    """A cap bounds every fascicle of its group, not the group's mean (issue 14, point 4): with
    multifidus held at 0.3 on average, some multifidus fascicle works near 1.0 (measured 0.99),
    so a cap of 0.6 cannot hold although the group mean (0.30) is half of it."""
    plan = plan_for(loaded_twin, exercise="isometric_hold", targets={"multifidus": 0.3},
                    limits={"activation": {"multifidus": 0.6}}, search={"trials": 30})
    with pytest.raises(Infeasible, match=r"multifidus activation cap \(0.6, every fascicle\) binds"):
        make_plan(loaded_twin, plan)


@pytest.mark.slow
def test_a_cap_means_the_same_in_simulate_plan_and_verification(loaded_twin):
    """Where a plan keeps every psoas fascicle under the cap, `simulate`'s statics with the cap as
    a bound on each fascicle gives the plan's activations exactly (the bound is not active)."""
    from dataclasses import replace

    from planning.evaluate import precompute
    from twin.statics import Statics

    plan = plan_for(loaded_twin, exercise="isometric_hold", targets={"multifidus": 0.25},
                    limits={"activation": {"psoas": 0.35}}, search={"trials": 25})
    result = make_plan(loaded_twin, plan, opensim_verification=False)
    psoas = result.prediction.groups.index("psoas")
    assert result.prediction.group_peak[:, psoas].max() <= 0.35 * (1 - plan.search.margin) + 1e-9
    trajectory = precompute(loaded_twin.spec, result.exercise, result.times_s[:3], plan.contact)
    capped = Statics(loaded_twin.spec, {"psoas": 0.35})
    members = np.array([f.group == "psoas" for f in loaded_twin.spec.fascicles])
    for k, base in enumerate(trajectory.frames):
        force = result.forces_N[k]
        frame = replace(base, net_moments=base.net_moments - trajectory.contact_jacobian[k] @ force,
                        external=[(trajectory.contact_body, trajectory.contact_rotation[k] @ force)])
        solved = capped.solve_frame(frame)
        assert solved.activations[members].max() == pytest.approx(result.prediction.group_peak[k, psoas], abs=1e-6)
        assert solved.levels["L4-L5"].compression_N == pytest.approx(result.prediction.compression_N[k, 3], abs=1e-3)


@pytest.mark.slow
def test_pareto_mode_returns_a_non_dominated_feasible_front(loaded_twin):
    plan = plan_for(loaded_twin, exercise="trunk_extension", targets={"multifidus": 0.3},
                    search={"trials": 60, "mode": "pareto"})
    result = make_plan(loaded_twin, plan, opensim_verification=False)
    front = result.search.pareto_front()
    assert len(front) >= 2 and all(c.feasible for c in front)
    for c in front:
        assert not any(o.error < c.error and o.peak_compression_N < c.peak_compression_N for o in front)
    errors = [c.error for c in sorted(front, key=lambda c: c.peak_compression_N)]
    assert errors == sorted(errors, reverse=True)  # less compression costs target error
    assert result.chosen.error == min(c.error for c in front)


@pytest.mark.slow
def test_journal_storage_resumes_and_guards_its_study(loaded_twin, tmp_path):
    from lumbar_twin.errors import LumbarTwinError

    storage = str(tmp_path / "study.log")
    plan = plan_for(loaded_twin, exercise="isometric_hold", targets={"multifidus": 0.2}, search={"trials": 12})
    first = make_plan(loaded_twin, plan, storage=storage, study="s1", opensim_verification=False)
    assert first.search.trials_run == 12
    more = plan_for(loaded_twin, exercise="isometric_hold", targets={"multifidus": 0.2}, search={"trials": 20})
    resumed = make_plan(loaded_twin, more, storage=storage, study="s1", opensim_verification=False)
    assert resumed.search.trials_run == 8 and len(resumed.search.candidates) == 20
    assert resumed.chosen.error <= first.chosen.error
    other = plan_for(loaded_twin, exercise="isometric_hold", targets={"multifidus": 0.1}, search={"trials": 12})
    with pytest.raises(LumbarTwinError, match="belongs to another plan"):
        make_plan(loaded_twin, other, storage=storage, study="s1")

"""The optuna search: non-finite trials fail with their reason and the search goes on (issue 14, point 3)."""
import numpy as np
import optuna
from optuna.trial import TrialState

from planning.evaluate import Evaluator, precompute, search_frames
from planning.exercise import load_exercise
from planning.plan import resolve_plan
from planning.profile import sample_times
from planning.search import FAIL_REASON, run_search


class _NaNAbove:
    """The real evaluator, except that forces above `threshold_N` give NaN compression (as a
    broken solve would)."""

    def __init__(self, evaluator, threshold_N):
        self.evaluator, self.threshold_N, self.trajectory = evaluator, threshold_N, evaluator.trajectory

    def __call__(self, forces):
        evaluation = self.evaluator(forces)
        if np.linalg.norm(forces, axis=1).max() > self.threshold_N:
            evaluation.compression_N[3, 2] = np.nan
        return evaluation


def test_a_nan_trial_is_recorded_as_failed_with_its_reason_and_the_search_goes_on(loaded_twin, tmp_path):
    spec = loaded_twin.spec
    plan = resolve_plan(spec, {"exercise": "isometric_hold", "targets": {"multifidus": 0.2},
                               "search": {"trials": 14, "eval_frames": 6}})
    exercise = load_exercise(plan.exercise)
    times = sample_times(exercise.cycle_s, plan.device.rate_hz)
    index = search_frames(len(times), plan.search.eval_frames)
    evaluator = Evaluator(spec, precompute(spec, exercise, times, plan.contact).subset(index))
    storage = str(tmp_path / "study.log")
    push = spec.contact(plan.contact).push_direction
    # The start ladder (0, 20, ... 80 % of the device maximum) puts at least two trials above half of it.
    result = run_search(_NaNAbove(evaluator, 0.5 * plan.device.max_force_N), plan, push, index,
                        storage=storage, study_name="nan")
    study = optuna.load_study(study_name="nan", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(storage)))
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(failed) >= 2 and len(complete) >= 5 and len(failed) + len(complete) == 14
    assert all("non-finite values (NaN or inf) in compression_N" in t.user_attrs[FAIL_REASON] for t in failed)
    assert all(max(v for k, v in t.params.items() if k.startswith("knot")) > 0.5 * plan.device.max_force_N
               for t in failed)
    assert all(np.isfinite(c.error) and all(np.isfinite(list(c.constraints.values()))) for c in result.candidates)
    assert len(result.candidates) == len(complete)


def test_only_the_process_that_creates_a_shared_study_enqueues_the_start_ladder(loaded_twin, tmp_path):
    """Workers opening one study together must not each add the constant-force ladder (the
    two-worker PostgreSQL test lost a quarter of its trials to duplicates); study creation is
    atomic, so only its creator enqueues."""
    from planning.search import START_FORCES, _study

    plan = resolve_plan(loaded_twin.spec, {"exercise": "isometric_hold", "targets": {"multifidus": 0.2},
                                           "search": {"trials": 3, "eval_frames": 6}})
    storage = str(tmp_path / "shared.log")
    first, created_first = _study(plan, storage, "shared", {"plan": "x"})
    second, created_second = _study(plan, storage, "shared", {"plan": "x"})
    assert (created_first, created_second) == (True, False)

    exercise = load_exercise(plan.exercise)
    times = sample_times(exercise.cycle_s, plan.device.rate_hz)
    index = search_frames(len(times), plan.search.eval_frames)
    evaluator = Evaluator(loaded_twin.spec, precompute(loaded_twin.spec, exercise, times, plan.contact).subset(index))
    push = loaded_twin.spec.contact(plan.contact).push_direction
    for trials in (3, 12):  # a new study, then the same study resumed with a larger budget
        more = resolve_plan(loaded_twin.spec, {"exercise": "isometric_hold", "targets": {"multifidus": 0.2},
                                               "search": {"trials": trials, "eval_frames": 6}})
        run_search(evaluator, more, push, index, storage=storage, study_name="ladder")
    study = optuna.load_study(study_name="ladder", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(storage)))
    ladder = [t for t in study.trials if t.system_attrs.get("fixed_params")]
    assert len(ladder) == len(START_FORCES)
    assert sorted(t.params["knot_0_N"] for t in ladder) == [f * plan.device.max_force_N for f in START_FORCES]

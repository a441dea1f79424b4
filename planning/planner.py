"""From a twin and a plan to a verified force profile: precompute, search, verify.

>>> from twin.simulate import load_twin                                     # doctest: +SKIP
>>> from planning.planner import make_plan, plan_for                         # doctest: +SKIP
>>> twin = load_twin("out/")                                                 # doctest: +SKIP
>>> result = make_plan(twin, plan_for(twin, exercise="trunk_extension",      # doctest: +SKIP
...                                   targets={"multifidus": 0.25}))
>>> result.verification.passed, result.prediction_summary()                 # doctest: +SKIP
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from lumbar_twin import __version__
from lumbar_twin.errors import LumbarTwinError
from lumbar_twin.fileio import read_json, sha256_file
from planning.evaluate import Evaluation, Evaluator, mean_activations, precompute, search_frames, target_errors
from planning.exercise import Exercise, load_exercise
from planning.plan import Plan, resolve_plan
from planning.profile import sample_times
from planning.search import Candidate, SearchResult, redact, run_search
from planning.opensim_verify import BAND_UNIFORM_FRAMES, OpenSimVerification, verification_frames, verify_patients
from planning.verify import Verification, verify
from twin.simulate import LoadedTwin

OTHER_ENGINE = {"mujoco": "opensim", "opensim": "mujoco"}
#: How many of the best feasible trials verification tries before giving up.
MAX_VERIFICATIONS = 5


class Infeasible(LumbarTwinError):
    """No trial met the limits, or none passed verification: nothing may be exported."""


@dataclass
class PlanResult:
    twin: LoadedTwin
    plan: Plan
    exercise: Exercise
    search: SearchResult
    chosen: Candidate
    verification: Verification
    times_s: np.ndarray  # device samples
    forces_N: np.ndarray  # (samples, 3), contact body frame
    identity: dict[str, str]
    provenance: dict
    timings_s: dict[str, float] = field(default_factory=dict)
    #: OpenSim's own StaticOptimization + JointReaction on model.osim (None only when skipped:
    #: such a result cannot be exported).
    independent: OpenSimVerification | None = None
    #: The same for the weakest and strongest plausible patient (empty with uncertainty "none").
    independent_band: dict[str, OpenSimVerification] = field(default_factory=dict)

    def worst_case_peak(self) -> dict:
        """Each peak's largest value over the point estimate and the plausible patients, in both
        engines and in OpenSim's re-solve (what the limits were held against)."""
        sources = [self.verification.peak, self.verification.search_peak]
        sources += [e.peaks() for pair in self.verification.band.values() for e in pair]
        sources += [v.evaluation.peaks() for v in ([self.independent] if self.independent else [])
                    + list(self.independent_band.values())]
        out = {}
        for kind, value in sources[0].items():
            if isinstance(value, dict):
                out[kind] = {key: max(s[kind][key] for s in sources) for key in value}
            else:
                out[kind] = max(s[kind] for s in sources)
        return out

    @property
    def prediction(self) -> Evaluation:
        """The search engine at every device sample (the plan's own prediction)."""
        return self.verification.search_evaluation

    def mean_activation(self) -> dict[str, dict[str, float]]:
        return mean_activations(self.prediction, self.plan.targets, self.exercise.cycle_s)

    def rms_target_error(self) -> float:
        return float(np.sqrt(np.mean(target_errors(self.prediction, self.plan.targets, self.exercise.cycle_s) ** 2)))


def plan_for(twin: LoadedTwin, **document) -> Plan:
    """A checked plan from keyword sections (exercise=, contact=, targets=, limits=, device=, search=)."""
    return resolve_plan(twin.spec, document, twin.patient.get("limits"))


def make_plan(twin: LoadedTwin, plan: Plan, *, engine: str = "mujoco", storage: str | None = None,
              study: str | None = None, progress: bool = False, opensim_verification: bool = True,
              opensim_workers: int | None = None) -> PlanResult:
    """Search, then verify the best feasible profiles until one passes both verifications: the
    two-engine consistency check at every device sample (planning/verify.py) and OpenSim's own
    StaticOptimization + JointReaction on the twin's model.osim (planning/opensim_verify.py).

    `opensim_verification=False` skips the second (about 3 s a plan) for studies and fast tests
    of other logic; the result then has `independent=None` and the exporter refuses it.
    `opensim_workers`: processes for that re-solve (None: the machine's cores, at most 4; give 1
    where plans already run in parallel, as a batch does).
    Raises Infeasible (naming the limit that binds) when no trial meets the limits or none of
    the best passes verification.
    """
    if engine not in OTHER_ENGINE:
        raise LumbarTwinError(f"unknown engine {engine!r}; choose mujoco or opensim")
    timings, start = {}, time.perf_counter()
    spec, exercise = twin.spec, load_exercise(plan.exercise)
    push = spec.contact(plan.contact).push_direction
    times = sample_times(exercise.cycle_s, plan.device.rate_hz)
    index = search_frames(len(times), plan.search.eval_frames)
    full = precompute(spec, exercise, times, plan.contact, engine)
    timings["precompute_s"] = time.perf_counter() - start

    identity = _identity(twin, plan)
    # The morphometry's measurement band: the limits must hold for these patients too.
    plausible = twin.plausible_specs() if plan.uncertainty == "morphometry" else {}
    searched = full.subset(index)
    result = run_search(Evaluator(spec, searched), plan, push, index, storage=storage, study_name=study,
                        identity={k: identity[k] for k in ("twin", "plan")}, progress=progress,
                        band={label: Evaluator(s, searched) for label, s in plausible.items()})
    timings["search_s"] = time.perf_counter() - start - sum(timings.values())
    feasible = result.feasible
    if not feasible:
        raise Infeasible(_no_feasible_message(result, plan))

    other = OTHER_ENGINE[engine]
    other_full = precompute(spec, exercise, times, plan.contact, other)
    search_eval, other_eval = Evaluator(spec, full), Evaluator(spec, other_full)
    band_eval = {label: (Evaluator(s, other_full), Evaluator(s, full)) for label, s in plausible.items()}
    poses = exercise.poses(spec, times) if opensim_verification else None
    rejected, independent, independent_band = [], None, {}
    for candidate in feasible[:MAX_VERIFICATIONS]:
        _, forces = candidate.profile.samples(plan.device, push)
        verification = verify(plan, forces, push, other_eval(forces), other, search_eval(forces), engine,
                              band={label: (o(forces), e(forces)) for label, (o, e) in band_eval.items()})
        if not verification.passed:
            rejected.append(f"trial {candidate.number}: {verification.problems[0]}")
            continue
        if opensim_verification:
            opensim_start = time.perf_counter()
            patients = {"point estimate": (verification.search_evaluation, None)}
            patients |= {label: (verification.band[label][1],
                                 np.array([f.max_isometric_force_N for f in s.fascicles]))
                         for label, s in plausible.items()}
            frames = {label: verification_frames(claimed, plan, uniform=BAND_UNIFORM_FRAMES)
                      for label, (claimed, _) in patients.items() if label != "point estimate"}
            outcomes = verify_patients(twin.directory / "model.osim", spec, plan, poses, forces, patients,
                                       _net_moments(full, forces), frames=frames, workers=opensim_workers)
            timings["opensim_s"] = timings.get("opensim_s", 0.0) + time.perf_counter() - opensim_start
            failed = [o for o in outcomes.values() if not o.passed]
            if failed:
                rejected.append(f"trial {candidate.number}: OpenSim's StaticOptimization/JointReaction, "
                                f"{failed[0].label}: {failed[0].problems[0]}")
                continue
            independent = outcomes.pop("point estimate")
            independent_band = outcomes
        break
    else:
        raise Infeasible(f"none of the {len(rejected)} best profiles passed verification: " + "; ".join(rejected))
    timings["verify_s"] = time.perf_counter() - start - sum(v for k, v in timings.items() if k != "opensim_s")
    timings.setdefault("opensim_s", 0.0)  # wall time of OpenSim's re-solves, part of verify_s
    provenance = {
        "toolkit": "lumbar-twin", "toolkit_version": __version__,
        "twin_sha256": identity["twin"], "plan_sha256": identity["plan"],
        "morphometry_sha256": identity.get("morphometry"), "seed": plan.search.seed,
        "study": result.study_name, "storage": redact(storage) or "memory", "search_engine": engine,
        "trials": len(result.candidates), "trial": candidate.number, "rejected_in_verification": rejected,
    }
    provenance["uncertainty"] = plan.uncertainty
    return PlanResult(twin, plan, exercise, result, candidate, verification, times, forces, identity,
                      provenance, timings, independent, independent_band)


def _net_moments(trajectory, forces: np.ndarray) -> np.ndarray:
    """(samples, coordinates) net moments under the robot's force (the reserve share's denominator)."""
    return np.array([frame.net_moments - trajectory.contact_jacobian[k] @ forces[k]
                     for k, frame in enumerate(trajectory.frames)])


def _identity(twin: LoadedTwin, plan: Plan) -> dict[str, str]:
    twin_file = twin.directory / "twin.json"
    provenance = read_json(twin_file).get("provenance", {})  # the twin's own record of its inputs
    morphometry = ((provenance.get("inputs") or {}).get("morphometry") or {}).get("sha256")
    return {"twin": sha256_file(twin_file), "plan": plan.sha256(), "morphometry": morphometry}


def _no_feasible_message(result: SearchResult, plan: Plan) -> str:
    """Name the limit that binds: the one the least-violating trial still breaks most."""
    least = min(result.candidates, key=lambda c: sum(max(0.0, v) for v in c.constraints.values()))
    key, value = least.binding
    margin = plan.search.margin
    if key == "reserve_share":  # a weak patient: the shortfall in N m is the headline
        return (f"no profile meets the limits in {len(result.candidates)} trials: the muscles cannot hold the "
                f"exercise ({least.shortfall or 'reserve actuators needed'}, in the closest trial, "
                f"{least.number}); nothing exported")
    patient = (least.constraint_patient or {}).get(key, "point estimate")
    whom = "" if patient == "point estimate" else f" for the {patient} patient (the morphometry's measurement band)"
    return (f"no profile meets the limits in {len(result.candidates)} trials: {_limit_name(key, plan)} binds{whom} "
            f"(the closest trial, {least.number}, is {value:.0%} over it, the {margin:.0%} search margin "
            f"included); nothing exported")


def _limit_name(key: str, plan: Plan) -> str:
    limits = plan.limits
    if key == "compression_N":
        return f"compression (limit {min(limits.compression_N.values()):.0f} N)"
    if key == "ap_shear_N":
        return f"AP shear (limit {min(limits.ap_shear_N.values()):.0f} N)"
    if key == "reserve_share":
        return "muscle capacity (reserve actuators needed: the exercise itself is out of reach)"
    if key.startswith("activation."):
        group = key.split(".", 1)[1]
        return f"the {group} activation cap ({limits.activation[group]:g}, every fascicle)"
    return key

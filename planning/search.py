"""Optuna search for a force profile: target error as the objective, limits as hard constraints.

Each trial proposes magnitude knots and a direction, expands them at the device rate (device
limits hold by construction), evaluates the exercise frames the search looks at, and reports
every limit as an optuna constraint (<= 0 feasible): TPE and NSGA-II sample around infeasible
regions instead of trading a limit against the objective. Mode `pareto` adds the peak
compression as a second objective and returns the feasible front.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState

from lumbar_twin.errors import InputError, LumbarTwinError
from planning.evaluate import Evaluator, constraint_values, mean_activations, target_objective
from planning.plan import Plan
from planning.profile import Profile

optuna.logging.set_verbosity(optuna.logging.WARNING)

#: Constant forces (shares of the device maximum) every new study starts from.
START_FORCES = (0.0, 0.2, 0.4, 0.6, 0.8)
#: User attribute of a FAIL trial that says why it failed.
FAIL_REASON = "fail_reason"
log = logging.getLogger(__name__)


class NonFiniteTrial(LumbarTwinError):
    """A trial's evaluation gave NaN or inf: it is recorded as failed, never as a result."""


def non_finite_reason(evaluation, error: float, constraints: dict[str, float]) -> str | None:
    """Why a trial's numbers cannot be trusted (None when every one is finite)."""
    bad = evaluation.non_finite() + ([] if np.isfinite(error) else ["objective"])
    bad += [f"constraint {key}" for key, value in constraints.items() if not np.isfinite(value)]
    return f"non-finite values (NaN or inf) in {', '.join(bad)}" if bad else None


@dataclass(frozen=True)
class Candidate:
    """A completed trial, as the planner reads it back from the study."""

    number: int
    profile: Profile
    error: float  # the objective over the frames searched (evaluate.target_objective)
    peak_compression_N: float
    constraints: dict[str, float]
    mean_activation: dict[str, dict[str, float]]
    shortfall: str | None = None  # where the muscles fall short (N m), when they do
    constraint_patient: dict[str, str] | None = None  # whose value each constraint is (band searches)

    @property
    def feasible(self) -> bool:
        return all(v <= 0.0 for v in self.constraints.values())

    @property
    def binding(self) -> tuple[str, float]:
        """The constraint closest to (or furthest past) its limit."""
        return max(self.constraints.items(), key=lambda kv: kv[1])


@dataclass(frozen=True)
class SearchResult:
    study_name: str
    candidates: tuple[Candidate, ...]  # every completed trial
    trials_run: int  # by this process (other workers may have added to the study)

    @property
    def feasible(self) -> list[Candidate]:
        return sorted((c for c in self.candidates if c.feasible), key=lambda c: (c.error, c.number))

    def pareto_front(self) -> list[Candidate]:
        """Feasible trials no other feasible trial beats in both error and peak compression."""
        feasible = self.feasible
        return [c for c in feasible if not any(
            o.error <= c.error and o.peak_compression_N <= c.peak_compression_N
            and (o.error < c.error or o.peak_compression_N < c.peak_compression_N) for o in feasible)]


def open_storage(url: str | None):
    """None -> in memory; 'journal:PATH' or a path -> journal file; otherwise an RDB URL
    (sqlite:///plan.db, postgresql://user:pass@host/db)."""
    if url is None:
        return None
    if url.startswith("journal:") or "://" not in url:
        path = url.removeprefix("journal:")
        return JournalStorage(JournalFileBackend(path))
    for attempt in range(4):
        try:
            return RDBStorage(url, heartbeat_interval=None)
        except Exception as exc:  # SQLAlchemy raises many kinds; the user needs the one line
            # Workers starting together on a fresh database race to create optuna's tables:
            # the loser finds them made on a second try.
            problem = str(exc).splitlines()[0]
            time.sleep(0.5 * (attempt + 1))
    raise InputError(None, f"cannot open {redact(url)}: {problem}", field="--storage")


def redact(url: str | None) -> str | None:
    """A storage URL without its password (for logs and provenance)."""
    if url is None or "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def run_search(evaluator: Evaluator, plan: Plan, push_direction, sample_index: np.ndarray, *,
               storage: str | None = None, study_name: str | None = None, identity: dict | None = None,
               progress: bool = False, band: dict[str, Evaluator] | None = None) -> SearchResult:
    """Run trials until the study holds `plan.search.trials` completed ones.

    `sample_index` picks the device-rate samples the search evaluates (the evaluator's frames).
    `identity` (hashes of twin and plan) is stored with a new study and checked when resuming.
    `band`: evaluators of the plausible patients (e.g. {"weakest plausible": ..., "strongest
    plausible": ...}) on the same frames. The objective is the point estimate's; each constraint
    is the largest over the point estimate and these patients, so a feasible trial keeps every
    limit for all of them. A trial already infeasible at the point estimate keeps its point
    constraints (infeasible either way; it saves the band's solves).
    """
    search, device = plan.search, plan.device
    cycle = evaluator.trajectory.cycle_s
    name = study_name or f"plan-{(identity or {}).get('plan', 'adhoc')[:16]}"
    study, created = _study(plan, storage, name, identity)
    done = sum(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False))
    remaining = max(0, search.trials - done)
    ran = 0

    def objective(trial: optuna.Trial):
        nonlocal ran
        ran += 1
        knots = tuple(trial.suggest_float(f"knot_{k}_N", 0.0, device.max_force_N) for k in range(search.knots))
        tilt = trial.suggest_float("tilt_deg", 0.0, device.cone_deg) if device.cone_deg > 0 else 0.0
        azimuth = trial.suggest_float("azimuth_deg", -180.0, 180.0) if device.cone_deg > 0 else 0.0
        profile = Profile(plan.contact, cycle, knots, tilt, azimuth)
        _, forces = profile.samples(device, push_direction)
        try:
            evaluation = evaluator(forces[sample_index])
        except LumbarTwinError as exc:  # e.g. the static optimisation did not converge
            trial.set_user_attr(FAIL_REASON, str(exc))
            raise
        error = target_objective(evaluation, plan.targets, cycle)
        constraints = constraint_values(evaluation, plan.limits, search.margin)
        peak = float(evaluation.compression_N.max())
        reason = non_finite_reason(evaluation, error, constraints)
        worst = dict.fromkeys(constraints, "point estimate")
        if not reason and band and all(v <= 0.0 for v in constraints.values()):
            for label, other in band.items():
                other_evaluation = other(forces[sample_index])
                other_constraints = constraint_values(other_evaluation, plan.limits, search.margin)
                reason = non_finite_reason(other_evaluation, 0.0, other_constraints)
                if reason:
                    reason = f"{label}: {reason}"
                    break
                for key, value in other_constraints.items():
                    if value > constraints[key]:
                        constraints[key], worst[key] = value, label
                if other_constraints["reserve_share"] > 0 and worst["reserve_share"] == label:
                    trial.set_user_attr("shortfall", f"{label} patient: {other_evaluation.shortfall().headline}")
        if reason:
            # Recorded as FAIL with its reason (optuna refuses NaN values and constraints);
            # the search goes on.
            trial.set_user_attr(FAIL_REASON, reason)
            raise NonFiniteTrial(reason)
        for key, value in constraints.items():
            trial.set_constraint(key, value)
        trial.set_user_attr("mean_activation", mean_activations(evaluation, plan.targets, cycle))
        trial.set_user_attr("peak_compression_N", peak)
        if band:
            trial.set_user_attr("constraint_patient", worst)  # whose constraint each value is
        if worst["reserve_share"] == "point estimate" and constraints["reserve_share"] > 0:
            trial.set_user_attr("shortfall", evaluation.shortfall().headline)  # where the muscles fall short, N m
        return (error, peak) if search.mode == "pareto" else error

    if created:
        # Only the process that created the study enqueues the ladder (creation is atomic in
        # every storage: a unique study name), so workers starting together on a shared study
        # do not each add it; `skip_if_exists` guards a resumed one.
        # Start from "no robot" (feasible whenever the exercise itself is, where random starts
        # may all push too hard under a tight cap) and a ladder of constant forces along the
        # pad's push direction (the whole answer for a held posture); TPE refines from there.
        direction = {"tilt_deg": 0.0, "azimuth_deg": 0.0} if device.cone_deg > 0 else {}
        for fraction in START_FORCES:
            study.enqueue_trial({**{f"knot_{k}_N": fraction * device.max_force_N for k in range(search.knots)},
                                 **direction}, skip_if_exists=True)
    if remaining:
        log.info("study %s: %d of %d trials done, running %d", name, done, search.trials, remaining)
        # A trial whose statics fails is recorded as failed; the search goes on.
        study.optimize(objective, n_trials=remaining, show_progress_bar=progress, catch=(LumbarTwinError,),
                       callbacks=[MaxTrialsCallback(search.trials, states=(TrialState.COMPLETE,))])
    candidates = tuple(_candidate(t, plan, cycle) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    return SearchResult(name, candidates, ran)


def _study(plan: Plan, storage: str | None, name: str, identity: dict | None) -> tuple[optuna.Study, bool]:
    """The study, and whether this call created it."""
    search = plan.search
    seed = search.seed
    if storage is not None:
        # Workers sharing a study must not draw the same points: each mixes in its process id.
        # Plans are repeatable exactly in memory (the default) or from one fresh process.
        seed = (search.seed * 1_000_003 + os.getpid()) % (2**31)
    samplers = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=10),
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed, population_size=20),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
    }
    directions = ["minimize", "minimize"] if search.mode == "pareto" else ["minimize"]
    opened, sampler = open_storage(storage), samplers[search.sampler]()
    try:
        study = optuna.create_study(storage=opened, sampler=sampler, study_name=name, directions=directions)
        created = True
    except optuna.exceptions.DuplicatedStudyError:  # another worker (or an earlier run) made it
        study = optuna.create_study(storage=opened, sampler=sampler, study_name=name, directions=directions,
                                    load_if_exists=True)
        created = False
    recorded = study.user_attrs.get("identity")
    if recorded is None:
        study.set_user_attr("identity", identity or {})
    elif identity is not None and recorded != identity:
        differs = sorted(k for k in set(recorded) | set(identity) if recorded.get(k) != identity.get(k))
        raise LumbarTwinError(f"study {name!r} in {redact(storage)} belongs to another plan "
                              f"({', '.join(differs)} differ); choose another --study name")
    if len(study.directions) != len(directions):
        raise LumbarTwinError(f"study {name!r} was run in the other mode; choose another --study name")
    return study, created


def _candidate(trial: optuna.trial.FrozenTrial, plan: Plan, cycle: float) -> Candidate:
    params = trial.params
    profile = Profile(plan.contact, cycle, tuple(params[f"knot_{k}_N"] for k in range(plan.search.knots)),
                      params.get("tilt_deg", 0.0), params.get("azimuth_deg", 0.0))
    return Candidate(trial.number, profile, trial.values[0], float(trial.user_attrs["peak_compression_N"]),
                     dict(trial.constraints), trial.user_attrs["mean_activation"], trial.user_attrs.get("shortfall"),
                     trial.user_attrs.get("constraint_patient"))

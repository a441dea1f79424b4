"""What if: an exported profile, perhaps scaled, on another exercise or against other targets
and limits, predicted in about a second (MuJoCo statics at every device sample).

>>> w = what_if(load_twin("out/"), "plan/profile.json", scale=1.2)   # doctest: +SKIP
>>> w.breaches, w.mean_activation                                     # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lumbar_twin.errors import InputError
from planning.evaluate import Evaluation, Evaluator, mean_activations, precompute
from planning.exercise import Exercise, load_exercise
from planning.export import read_profile
from planning.plan import Plan, merge, resolve_plan
from planning.profile import check_samples, sample_times
from planning.verify import limit_breaches
from twin.simulate import LoadedTwin


@dataclass(frozen=True)
class WhatIf:
    plan: Plan  # the targets and limits it was judged against
    exercise: Exercise
    scale: float
    times_s: np.ndarray
    forces_N: np.ndarray
    evaluation: Evaluation
    device_problems: tuple[str, ...]
    breaches: tuple[str, ...]

    @property
    def mean_activation(self) -> dict[str, dict[str, float]]:
        return mean_activations(self.evaluation, self.plan.targets, self.exercise.cycle_s)


def what_if(twin: LoadedTwin, profile_path: str | Path, exercise: str | None = None, scale: float = 1.0,
            overlay: dict | None = None) -> WhatIf:
    """`overlay`: plan sections (targets, limits) that replace the profile's own."""
    if not scale >= 0:
        raise InputError(None, f"{scale} is not a scale factor (0 or more)", field="--scale")
    doc, times, forces = read_profile(profile_path)
    try:
        document = {
            "exercise": exercise or doc["exercise"],
            "contact": doc["contact"],
            "targets": {label: {"value": value, "phase": doc.get("target_phases", {}).get(label, [0.0, 1.0])}
                        for label, value in doc["targets"].items()},
            "limits": {k: doc["limits"][k] for k in ("compression_N", "ap_shear_N", "activation", "reserve_share")},
            "device": {k: doc["device"][k] for k in ("max_force_N", "max_rate_N_per_s", "cone_deg")}
            | {"rate_hz": doc["rate_hz"]},
        }
    except (KeyError, TypeError) as exc:
        raise InputError(profile_path, f"incomplete device profile (missing {exc})") from None
    plan = resolve_plan(twin.spec, merge(document, overlay or {}), source=profile_path)
    chosen = load_exercise(plan.exercise)
    new_times = sample_times(chosen.cycle_s, plan.device.rate_hz)
    # The profile is periodic: play it by phase over the (possibly longer or shorter) new cycle.
    phase_old = times / doc["cycle_s"]
    phase_new = new_times / chosen.cycle_s
    new_forces = scale * np.column_stack([np.interp(phase_new, phase_old, forces[:, k], period=1.0) for k in range(3)])
    trajectory = precompute(twin.spec, chosen, new_times, plan.contact, "mujoco")
    evaluation = Evaluator(twin.spec, trajectory)(new_forces)
    return WhatIf(plan, chosen, scale, new_times, new_forces, evaluation,
                  tuple(check_samples(new_forces, plan.device, doc["device"]["push_direction"], tolerance=1e-4)),
                  tuple(limit_breaches(evaluation, plan)))

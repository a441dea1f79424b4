"""What if: an exported profile, perhaps scaled, reshaped, shifted in time, played faster or slower,
on another exercise or against other targets and limits, predicted in about a second (MuJoCo
statics at every device sample).

>>> w = what_if(load_twin("out/"), "plan/profile.json", scale=1.2, speed=1.25)   # doctest: +SKIP
>>> w.breaches, w.mean_activation                                                 # doctest: +SKIP
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
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

#: Exercise speed range offered. The library's cycles are 5-8 s, chosen slow enough for the
#: quasi-static model to hold (data/exercises.yaml); twice as fast (2.5-4 s a cycle) is still a
#: slow, controlled repetition, faster is outside what the statics can predict honestly.
SPEED_RANGE = (0.5, 2.0)
#: Peak-shape exponent range: 1 keeps the shape; 4 narrows a peak to about half its width.
SHAPE_RANGE = (0.25, 4.0)
#: Timing shift range, % of the cycle: half a cycle either way reaches every timing.
SHIFT_RANGE_PCT = (-50.0, 50.0)


@dataclass(frozen=True)
class WhatIf:
    plan: Plan  # the targets and limits it was judged against
    exercise: Exercise  # as played: cycle_s is the exercise's own divided by `speed`
    scale: float
    times_s: np.ndarray
    forces_N: np.ndarray
    evaluation: Evaluation
    device_problems: tuple[str, ...]
    breaches: tuple[str, ...]
    speed: float = 1.0
    shape: float = 1.0
    shift_pct: float = 0.0

    @property
    def mean_activation(self) -> dict[str, dict[str, float]]:
        return mean_activations(self.evaluation, self.plan.targets, self.exercise.cycle_s)

    @property
    def peak_force_N(self) -> float:
        return float(np.linalg.norm(self.forces_N, axis=1).max(initial=0.0))

    @property
    def peak_rate_N_per_s(self) -> float:
        """The largest change between consecutive samples (last to first included: the cycle
        repeats) times the device rate, as check_samples measures it; grows with speed."""
        steps = np.linalg.norm(np.diff(self.forces_N, axis=0, append=self.forces_N[:1]), axis=1)
        return float(steps.max(initial=0.0) * self.plan.device.rate_hz)

    @property
    def changed(self) -> bool:
        """Whether the forces differ from the profile as verified (scale, speed, shape or timing)."""
        return (self.scale, self.speed, self.shape, self.shift_pct) != (1.0, 1.0, 1.0, 0.0)


def _check_range(value: float, bounds: tuple[float, float], what: str, option: str) -> float:
    value = float(value)
    if not bounds[0] <= value <= bounds[1]:  # NaN fails both comparisons: refused as well
        raise InputError(None, f"{value:g} is outside the {what} range {bounds[0]:g}..{bounds[1]:g}", field=option)
    return value


def reshape(phase: np.ndarray, forces_N: np.ndarray, shape: float = 1.0, shift_pct: float = 0.0,
            at_phase: np.ndarray | None = None) -> np.ndarray:
    """One periodic cycle of forces, shifted in time and reshaped, sampled at `at_phase`.

    phase (n,) in [0, 1), forces_N (n, 3) N; at_phase (m,) (default `phase`) -> (m, 3) N.
    - shift_pct: the whole force curve moves later in the cycle by this % of the cycle
      (negative: earlier): F'(p) = F(p - shift_pct / 100), periodic.
    - shape: peak sharpening by a power law on the magnitude, direction kept per sample:
      |F'| = M (|F| / M)^shape with M the cycle's peak magnitude. shape 1 keeps the profile;
      above 1 the assistance concentrates around its peak (lower between peaks, the same peak
      force); below 1 it spreads more evenly over the cycle (higher between peaks, the same
      peak). A constant profile is unchanged by any shape.
    Linear interpolation by phase (the device samples are dense: 100 Hz over 5-8 s).
    """
    at = np.asarray(phase if at_phase is None else at_phase, float)
    source = np.mod(at - shift_pct / 100.0, 1.0)
    out = np.column_stack([np.interp(source, phase, forces_N[:, k], period=1.0) for k in range(3)])
    if shape != 1.0:
        magnitude = np.linalg.norm(out, axis=1)
        peak = float(np.linalg.norm(forces_N, axis=1).max(initial=0.0))
        if peak > 0:
            factor = np.ones_like(magnitude)
            pushing = magnitude > 0
            factor[pushing] = (magnitude[pushing] / peak) ** shape * peak / magnitude[pushing]
            out = out * factor[:, None]
    return out


def what_if(twin: LoadedTwin, profile_path: str | Path, exercise: str | None = None, scale: float = 1.0,
            overlay: dict | None = None, speed: float = 1.0, shape: float = 1.0, shift_pct: float = 0.0) -> WhatIf:
    """Play a verified profile through the twin, perhaps changed, and judge it.

    - `exercise`: another exercise from the library (default the profile's own); the profile is
      periodic and is played by phase over that exercise's cycle.
    - `scale`: force factor (0 or more).
    - `speed`: exercise speed factor in SPEED_RANGE (0.5..2): the cycle lasts cycle_s / speed, so
      the motion (exercise.angles_deg) and the force both play `speed` times faster. The device
      rate stays, so a faster cycle has fewer samples and larger steps between them: its rate of
      change in N/s grows by `speed`, and the device limits are checked on the samples as played.
      The statics stay quasi-static (no inertia), which SPEED_RANGE keeps honest.
    - `shape` in SHAPE_RANGE (0.25..4) and `shift_pct` in SHIFT_RANGE_PCT (-50..50 % of the
      cycle): see `reshape`.
    - `overlay`: plan sections (targets, limits) that replace the profile's own.
    Order: timing shift, then shape, then scale. Out-of-range values raise InputError naming the
    option; a bad profile raises InputError naming the file.
    Returns a WhatIf with forces_N (n, 3) in N at times_s (n,) in s, n = round(cycle_s/speed x rate_hz).
    """
    if not (scale >= 0 and math.isfinite(scale)):  # NaN fails both; inf x a force is no force to play
        raise InputError(None, f"{scale} is not a scale factor (a finite number, 0 or more)", field="--scale")
    speed = _check_range(speed, SPEED_RANGE, "exercise speed", "--speed")
    shape = _check_range(shape, SHAPE_RANGE, "peak shape", "--shape")
    shift_pct = _check_range(shift_pct, SHIFT_RANGE_PCT, "timing shift (% of the cycle)", "--shift")
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
        cycle_s = float(doc["cycle_s"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(profile_path, f"incomplete device profile (missing {exc})") from None
    plan = resolve_plan(twin.spec, merge(document, overlay or {}), source=profile_path)
    own = load_exercise(plan.exercise)
    # Faster: the same keyframes over a shorter cycle, so the motion itself plays faster.
    chosen = own if speed == 1.0 else replace(own, cycle_s=own.cycle_s / speed)
    new_times = sample_times(chosen.cycle_s, plan.device.rate_hz)
    # The profile is periodic: play it by phase over the (possibly longer or shorter) new cycle.
    new_forces = scale * reshape(times / cycle_s, forces, shape, shift_pct, at_phase=new_times / chosen.cycle_s)
    trajectory = precompute(twin.spec, chosen, new_times, plan.contact, "mujoco")
    evaluation = Evaluator(twin.spec, trajectory)(new_forces)
    return WhatIf(plan, chosen, scale, new_times, new_forces, evaluation,
                  tuple(check_samples(new_forces, plan.device, doc["device"]["push_direction"], tolerance=1e-4)),
                  tuple(limit_breaches(evaluation, plan)), speed, shape, shift_pct)

"""Independent verification: the exported profile re-solved by OpenSim's own tools.

The two-engine check (planning/verify.py) shares the static optimisation and the load code
with the search; only kinematics differ, so it checks the models, not the numbers. This module
re-solves the profile on the exported model.osim with a separate code path, OpenSim's own
AnalyzeTool (planning/opensim_solve.py):

1. StaticOptimization (IPOPT) over the chosen device samples, with the robot's force as an
   ExternalForce on the contact body at the pad point (both in that body's frame), and
   reserve CoordinateActuators whose cost equals the toolkit's: OpenSim charges
   (r / F_opt)^2 for a reserve moment r, the toolkit w r^2 (twin.statics.RESERVE_WEIGHT), so
   F_opt = 1 / sqrt(w);
2. JointReaction over the same samples, fed an actuator-only forces file, giving each level's
   reaction force on the upper vertebra in its own frame: compression, AP and lateral shear.

StaticOptimization sets each muscle's force to activation x active fibre force (rigid tendon,
no passive fibre force, force-velocity 1 at zero speed): the toolkit's quasi-static model, so
the two agree to the solvers' tolerance (about 0.2 N compression and 2e-4 activation measured
on the sample twin), and the tolerances below (1 % compression, 0.005 activation) catch a real
disagreement. About 70 ms a frame on a 124-muscle twin; the frames of every patient (point
estimate, weakest and strongest plausible) are split into runs solved in worker processes.
"""
from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import opensim as osim

from lumbar_twin.errors import LumbarTwinError
from planning.opensim_solve import MIN_FRAMES, SolveRun, solve_in_processes
from planning.evaluate import Evaluation
from planning.plan import Plan
from planning.verify import limit_breaches
from twin.spec import LEVELS, SIDES, ModelSpec
from twin.statics import RESERVE_SHARE_FLOOR_NM, RESERVE_WEIGHT

#: Compression may differ from what the profile claims by this share of it, at every frame.
COMPRESSION_TOLERANCE = 0.01
#: Targeted groups' activations (force-weighted mean, each side) may differ by this much.
ACTIVATION_TOLERANCE = 0.005
#: Frames spread evenly over the cycle (the search engine's peak frames are added to them).
UNIFORM_FRAMES = 24
#: The same for the weakest and strongest plausible patient: their re-solve is there to hold
#: the limits, which bind at the peak frames; agreement over the cycle is a property of the
#: model and the solvers, shown on the point estimate with the same model.osim. Six is
#: StaticOptimization's minimum run.
BAND_UNIFORM_FRAMES = 6
#: Reserve optimal force so that OpenSim's (r / F_opt)^2 equals the toolkit's w r^2.
RESERVE_OPTIMAL_FORCE_NM = 1.0 / np.sqrt(RESERVE_WEIGHT)


@dataclass(frozen=True)
class OpenSimVerification:
    """OpenSim's StaticOptimization + JointReaction against what the profile claims."""

    passed: bool
    problems: tuple[str, ...]
    frames: np.ndarray  # device sample indices re-solved
    evaluation: Evaluation  # OpenSim's answers at those samples
    max_difference: dict[str, float]  # compression (relative), targeted activation (absolute)
    seconds: float
    label: str = "point estimate"  # which patient: point estimate, weakest, strongest plausible

    def to_dict(self) -> dict:
        return {"tool": f"OpenSim {osim.__version__} StaticOptimization + JointReaction (AnalyzeTool)",
                "patient": self.label, "passed": self.passed, "problems": list(self.problems),
                "frames": len(self.frames), "sample_indices": [int(k) for k in self.frames],
                "peak": self.evaluation.peaks(), "max_difference": self.max_difference,
                "tolerance": {"compression_relative": COMPRESSION_TOLERANCE, "targeted_activation": ACTIVATION_TOLERANCE},
                "seconds": round(self.seconds, 2)}


def verification_frames(claimed: Evaluation, plan: Plan, uniform: int = UNIFORM_FRAMES) -> np.ndarray:
    """Device samples to re-solve: `uniform` over the cycle plus every frame where the claimed
    evaluation peaks (each level's compression and |AP shear|, each capped group's busiest
    fascicle, each targeted side's highest and lowest activation, the reserve share)."""
    n = len(claimed.times_s)
    picks = list(np.round(np.linspace(0, n, uniform, endpoint=False)).astype(int))
    picks += list(claimed.compression_N.argmax(0)) + list(np.abs(claimed.ap_shear_N).argmax(0))
    picks += [int(claimed.group_peak[:, claimed.groups.index(g)].argmax()) for g in plan.limits.activation]
    for t in plan.targets:
        for side in t.sides:
            column = claimed.activation(t.group, side)
            picks += [int(column.argmax()), int(column.argmin())]
    picks.append(int(claimed.reserve_share.argmax()))
    return np.unique(np.clip(picks, 0, n - 1))


def default_workers() -> int:
    """Worker processes for the re-solve: the machine's cores (at most 4); 1 inside a daemonic
    process (a multiprocessing pool's or a Dask worker's), which may not start children."""
    if multiprocessing.current_process().daemon:
        return 1
    return max(1, min(os.cpu_count() or 1, 4))


def verify_with_opensim(model_path: str | Path, spec: ModelSpec, plan: Plan, poses: list[dict[str, float]],
                        forces_N: np.ndarray, claimed: Evaluation, net_moments_Nm: np.ndarray,
                        frames: np.ndarray | None = None, max_isometric_force_N: np.ndarray | None = None,
                        label: str = "point estimate", workers: int = 1) -> OpenSimVerification:
    """Re-solve `frames` of a profile with OpenSim's tools and compare with `claimed`.

    model_path: the exported model.osim. spec: its ModelSpec (fascicle, coordinate and level
    names; group weights). poses: one {coordinate: rad} per device sample. forces_N: (samples, 3)
    robot force in the contact body's frame. claimed: the search engine's Evaluation at every
    device sample (what profile.json reports). net_moments_Nm: (samples, coordinates) the net
    moments the muscles and reserves supply, the denominator of the reserve share.
    max_isometric_force_N: (fascicles,) to re-solve another plausible patient on the same
    model (None: the model's own). Passes when every limit holds in OpenSim's answers, the
    compression is within 1 % and each targeted activation within 0.005 of `claimed` at every
    re-solved frame. Raises LumbarTwinError if OpenSim's tools fail.
    """
    return verify_patients(model_path, spec, plan, poses, forces_N, {label: (claimed, max_isometric_force_N)},
                           net_moments_Nm, frames=frames, workers=workers)[label]


def verify_patients(model_path: str | Path, spec: ModelSpec, plan: Plan, poses: list[dict[str, float]],
                    forces_N: np.ndarray, patients: dict[str, tuple[Evaluation, np.ndarray | None]],
                    net_moments_Nm: np.ndarray, frames: np.ndarray | dict[str, np.ndarray] | None = None,
                    workers: int | None = None) -> dict[str, OpenSimVerification]:
    """verify_with_opensim for several patients of one model at once.

    patients: {label: (claimed Evaluation at every device sample, max isometric forces
    (fascicles,) N or None for the model's own)}. Each patient's frames (its own peaks and 24
    uniform ones, unless `frames` gives them, one array for all or one per label) are split into runs of at least six and solved in `workers` processes
    (None: default_workers()). `seconds` of each answer is the solver time spent on that
    patient, summed over its runs.
    """
    workers = default_workers() if workers is None else max(1, int(workers))
    if not isinstance(frames, dict):
        frames = {label: frames for label in patients}
    chosen = {label: verification_frames(claimed, plan) if frames.get(label) is None else np.asarray(frames[label], int)
              for label, (claimed, _) in patients.items()}
    for label, picks in chosen.items():
        if len(picks) < MIN_FRAMES:
            raise LumbarTwinError(f"OpenSim's StaticOptimization needs at least {MIN_FRAMES} frames "
                                  f"({label}: {len(picks)})")
    level_joints = {j.level: j for j in spec.joints if j.level}
    contact = spec.contact(plan.contact)
    pose_table = np.array([[pose.get(name, 0.0) for name in spec.coordinate_names] for pose in poses])
    runs, owners = [], []
    for label, (claimed, fmax) in patients.items():
        # As many runs a patient as workers (a balanced load), each at least MIN_FRAMES long.
        for part in np.array_split(chosen[label], max(1, min(workers, len(chosen[label]) // MIN_FRAMES))):
            runs.append(SolveRun(
                str(model_path), tuple(spec.fascicle_names), tuple(spec.coordinate_names),
                tuple((level_joints[lv].name, level_joints[lv].child) for lv in LEVELS), contact.body,
                tuple(float(v) for v in contact.location_m), float(RESERVE_OPTIMAL_FORCE_NM),
                claimed.times_s[part], pose_table[part], np.asarray(forces_N, float)[part],
                None if fmax is None else np.asarray(fmax, float)))
            owners.append(label)
    answers = solve_in_processes(runs, workers)

    out = {}
    for label, (claimed, fmax) in patients.items():
        mine = [answer for answer, owner in zip(answers, owners) if owner == label]
        activations, reserves, reactions = (np.concatenate([m[0][k] for m in mine]) for k in range(3))
        out[label] = _compare(spec, plan, chosen[label], claimed, activations, reserves, reactions,
                              net_moments_Nm, fmax, sum(m[1] for m in mine), label)
    return out


def _compare(spec: ModelSpec, plan: Plan, frames: np.ndarray, claimed: Evaluation, activations, reserves,
             reactions, net_moments_Nm, max_isometric_force_N, seconds: float, label: str) -> OpenSimVerification:
    times = claimed.times_s[frames]
    fmax = np.array([f.max_isometric_force_N for f in spec.fascicles]) if max_isometric_force_N is None \
        else np.asarray(max_isometric_force_N, float)
    evaluation = _evaluation(spec, times, activations, reserves, reactions, net_moments_Nm[frames], fmax)

    problems = [] if not evaluation.non_finite() else [
        f"OpenSim gave non-finite values in {', '.join(evaluation.non_finite())}"]
    problems += limit_breaches(evaluation, plan)
    ours = claimed.compression_N[frames]
    relative = np.abs(evaluation.compression_N - ours) / np.maximum(np.abs(ours), 1.0)
    k, i = np.unravel_index(int(np.nanargmax(relative)), relative.shape)
    if not relative[k, i] <= COMPRESSION_TOLERANCE:
        problems.append(f"compression at {LEVELS[i]} is {evaluation.compression_N[k, i]:.1f} N in OpenSim, "
                        f"{ours[k, i]:.1f} N claimed at t = {times[k]:.2f} s ({relative[k, i]:.1%} apart, "
                        f"more than {COMPRESSION_TOLERANCE:.0%})")
    worst_activation = 0.0
    for t in plan.targets:
        for side in t.sides:
            gap = np.abs(evaluation.activation(t.group, side) - claimed.activation(t.group, side)[frames])
            k = int(np.nanargmax(gap))
            worst_activation = max(worst_activation, float(gap[k]))
            if not gap[k] <= ACTIVATION_TOLERANCE:
                problems.append(f"{t.group} {side} activation is {evaluation.activation(t.group, side)[k]:.4f} in "
                                f"OpenSim, {claimed.activation(t.group, side)[frames][k]:.4f} claimed at "
                                f"t = {times[k]:.2f} s (more than {ACTIVATION_TOLERANCE} apart)")
    difference = {"compression_relative": float(np.nanmax(relative)),
                  "compression_N": float(np.nanmax(np.abs(evaluation.compression_N - ours))),
                  "targeted_activation": worst_activation}
    return OpenSimVerification(not problems, tuple(problems), frames, evaluation, difference, seconds, label)


def _evaluation(spec: ModelSpec, times, activations, reserves, reactions, net_moments, fmax) -> Evaluation:
    """OpenSim's answers in the toolkit's terms (twin/statics.py conventions)."""
    groups = tuple(dict.fromkeys(f.group for f in spec.fascicles))
    mean = np.empty((len(times), len(groups), len(SIDES)))
    peak = np.empty((len(times), len(groups)))
    for g, group in enumerate(groups):
        members = np.array([f.group == group for f in spec.fascicles])
        peak[:, g] = activations[:, members].max(1)
        for s, side in enumerate(SIDES):
            mask = members & np.array([f.side == side for f in spec.fascicles])
            mean[:, g, s] = activations[:, mask] @ fmax[mask] / fmax[mask].sum()
    # Reaction on the upper vertebra in its frame: compression pushes it up (+y), the load
    # above it pulls it down; AP and lateral shear are the load above, so minus the reaction.
    compression, ap_shear, lat_shear = reactions[..., 1], -reactions[..., 0], -reactions[..., 2]
    share = (np.abs(reserves) / np.maximum(np.abs(net_moments), RESERVE_SHARE_FLOOR_NM)).max(1)
    return Evaluation(np.asarray(times), groups, mean, peak, compression, ap_shear, lat_shear, share,
                      spec.coordinate_names, np.asarray(net_moments), reserves)

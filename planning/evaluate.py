"""A force profile along an exercise -> activations and spinal loads at every frame.

The posture of each frame is fixed by the exercise, so everything an engine computes from it
(lengths, moment arms, gravity's generalised forces, the contact's Jacobian) is the same for
every candidate profile: `precompute` asks the engine once per frame, and a profile's force F
(in the contact body's frame) only adds -J^T R F to the net moments and R F to the loads above
each level. That is exact, because a force enters the equations of motion linearly.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from planning.exercise import Exercise
from planning.plan import Limits, Target
from twin.engines import Frame
from twin.spec import LEVELS, SIDES, ModelSpec
from twin.statics import ENGINES, Shortfall, Statics, shortfall


@dataclass(frozen=True)
class Trajectory:
    """One engine's kinematics along an exercise, with no external load."""

    engine: str
    times_s: np.ndarray  # (n,)
    cycle_s: float
    frames: tuple[Frame, ...]
    contact_body: str
    contact_jacobian: np.ndarray  # (n, n_coordinates, 3): generalised force per N in the body frame
    contact_rotation: np.ndarray  # (n, 3, 3)

    def subset(self, index: np.ndarray) -> "Trajectory":
        return replace(self, times_s=self.times_s[index], frames=tuple(self.frames[i] for i in index),
                       contact_jacobian=self.contact_jacobian[index], contact_rotation=self.contact_rotation[index])


def precompute(spec: ModelSpec, exercise: Exercise, times_s: np.ndarray, contact: str,
               engine: str = "mujoco") -> Trajectory:
    """Ask `engine` about every frame of the exercise once (top level: runs in a worker process too)."""
    backend = ENGINES[engine](spec)
    poses = exercise.poses(spec, times_s)
    frames, jacobians, rotations = [], [], []
    for pose in poses:
        frames.append(backend.frame(pose))
        jac, rot = backend.contact_jacobian(pose, contact)
        jacobians.append(jac @ rot)
        rotations.append(rot)
    return Trajectory(engine, np.asarray(times_s, float), exercise.cycle_s, tuple(frames),
                      spec.contact(contact).body, np.array(jacobians), np.array(rotations))


@dataclass(frozen=True)
class Evaluation:
    """Per-frame answers for one profile. Group arrays are (frames, groups, sides)."""

    times_s: np.ndarray
    groups: tuple[str, ...]
    group_activation: np.ndarray  # force-weighted mean activation per group and side
    group_peak: np.ndarray  # (frames, groups): the most active fascicle of each group (either side); caps bound it
    compression_N: np.ndarray  # (frames, levels)
    ap_shear_N: np.ndarray
    lat_shear_N: np.ndarray
    reserve_share: np.ndarray  # (frames,)
    coordinates: tuple[str, ...] = ()
    needed_Nm: np.ndarray | None = None  # (frames, coordinates) net moments the muscles must supply
    reserve_Nm: np.ndarray | None = None  # (frames, coordinates) what the reserves carry of them

    def shortfall(self) -> Shortfall | None:
        """Where the muscles fall short most, at the frame of the largest reserve share (N m)."""
        if self.reserve_Nm is None:
            return None
        k = int(np.argmax(self.reserve_share))
        return shortfall(self.coordinates, self.needed_Nm[k], self.reserve_Nm[k])

    def non_finite(self) -> list[str]:
        """Names of the fields holding NaN or inf (empty when every number is finite)."""
        return [name for name in ("group_activation", "group_peak", "compression_N", "ap_shear_N", "lat_shear_N",
                                  "reserve_share") if not np.isfinite(getattr(self, name)).all()]

    def activation(self, group: str, side: str) -> np.ndarray:
        return self.group_activation[:, self.groups.index(group), SIDES.index(side)]

    def peaks(self) -> dict[str, dict[str, float]]:
        return {
            "compression_N": dict(zip(LEVELS, map(float, self.compression_N.max(0)))),
            "ap_shear_N": dict(zip(LEVELS, map(float, np.abs(self.ap_shear_N).max(0)))),
            "lat_shear_N": dict(zip(LEVELS, map(float, np.abs(self.lat_shear_N).max(0)))),
            "activation": dict(zip(self.groups, map(float, self.group_activation.max((0, 2))))),
            "fascicle_activation": dict(zip(self.groups, map(float, self.group_peak.max(0)))),
            "reserve_share": float(self.reserve_share.max()),
        }


class Evaluator:
    """Solves the statics of a trajectory under a force series; scores it against a plan."""

    def __init__(self, spec: ModelSpec, trajectory: Trajectory):
        self.spec, self.trajectory = spec, trajectory
        self.statics = Statics(spec)  # caps are limits to check, not bounds that shift load to reserves
        self.groups = tuple(dict.fromkeys(f.group for f in spec.fascicles))  # in the spec's order
        self._members = [np.array([f.group == g for f in spec.fascicles]) for g in self.groups]

    def __call__(self, forces_N: np.ndarray) -> Evaluation:
        """`forces_N` (frames, 3) in the contact body's frame, one per trajectory frame."""
        traj = self.trajectory
        n = len(traj.frames)
        activation = np.empty((n, len(self.groups), len(SIDES)))
        peak = np.empty((n, len(self.groups)))
        loads = np.empty((3, n, len(LEVELS)))
        reserve = np.empty(n)
        needed, reserve_Nm = np.empty((n, len(self.spec.coordinates))), np.empty((n, len(self.spec.coordinates)))
        for k, base in enumerate(traj.frames):
            force = np.asarray(forces_N[k], float)
            frame = replace(base, net_moments=base.net_moments - traj.contact_jacobian[k] @ force,
                            external=[(traj.contact_body, traj.contact_rotation[k] @ force)])
            result = self.statics.solve_frame(frame, warm_start=k > 0)
            activation[k] = [[result.groups[g][s] for s in SIDES] for g in self.groups]
            peak[k] = [result.activations[m].max() for m in self._members]
            for i, level in enumerate(LEVELS):
                load = result.levels[level]
                loads[:, k, i] = load.compression_N, load.ap_shear_N, load.lat_shear_N
            reserve[k] = result.reserve_share
            needed[k], reserve_Nm[k] = result.net_moments_Nm, result.reserve_Nm
        return Evaluation(traj.times_s, self.groups, activation, peak, *loads, reserve, self.spec.coordinate_names,
                          needed, reserve_Nm)


def search_frames(n_samples: int, eval_frames: int) -> np.ndarray:
    """Indices of the device samples the search evaluates: `eval_frames` spread over the cycle."""
    return np.unique(np.round(np.linspace(0, n_samples, eval_frames, endpoint=False)).astype(int))


def target_window(times_s: np.ndarray, cycle_s: float, target: Target) -> np.ndarray:
    """Which frames lie in the target's phase window [start, end) (end 1 includes the last)."""
    phase = np.mod(np.asarray(times_s) / cycle_s, 1.0)
    start, end = target.phase
    return (phase >= start) & (phase < end) if end < 1.0 else phase >= start


def target_errors(evaluation: Evaluation, targets: tuple[Target, ...], cycle_s: float) -> np.ndarray:
    """Every (frame in the target's phase window, targeted side) error, all targets together."""
    errors = []
    for t in targets:
        window = target_window(evaluation.times_s, cycle_s, t)
        for side in t.sides:
            errors.append(evaluation.activation(t.group, side)[window] - t.value)
    return np.concatenate(errors)


def target_objective(evaluation: Evaluation, targets: tuple[Target, ...], cycle_s: float) -> float:
    """What the search minimises: the RMS error over every frame plus the RMS of each targeted
    side's mean error. The first holds the activation at its target through the cycle; the
    second keeps the cycle's mean on target where the frames cannot all be (a bend to each side
    loads each side's muscles in turn), so that variance is not bought with bias."""
    errors = target_errors(evaluation, targets, cycle_s)
    means = mean_activations(evaluation, targets, cycle_s)
    bias = [means[t.label][side] - t.value for t in targets for side in t.sides]
    return float(np.sqrt(np.mean(errors**2)) + np.sqrt(np.mean(np.square(bias))))


def mean_activations(evaluation: Evaluation, targets: tuple[Target, ...], cycle_s: float) -> dict[str, dict[str, float]]:
    """Each targeted group's mean activation per side over its target window."""
    out = {}
    for t in targets:
        window = target_window(evaluation.times_s, cycle_s, t)
        out[t.label] = {side: float(evaluation.activation(t.group, side)[window].mean()) for side in SIDES}
    return out


def constraint_values(evaluation: Evaluation, limits: Limits, margin: float) -> dict[str, float]:
    """Normalised constraints, <= 0 where met: peak / (cap x (1 - margin)) - 1."""
    headroom = 1.0 - margin
    comp = np.array([limits.compression_N[lv] for lv in LEVELS])
    shear = np.array([limits.ap_shear_N[lv] for lv in LEVELS])
    out = {
        "compression_N": float((evaluation.compression_N / comp).max() / headroom - 1.0),
        "ap_shear_N": float((np.abs(evaluation.ap_shear_N) / shear).max() / headroom - 1.0),
        "reserve_share": float(evaluation.reserve_share.max() / limits.reserve_share - 1.0),
    }
    for group, cap in limits.activation.items():  # a cap bounds every fascicle of the group
        out[f"activation.{group}"] = float(evaluation.group_peak[:, evaluation.groups.index(group)].max()
                                           / (cap * headroom) - 1.0)
    return out

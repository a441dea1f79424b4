"""Quasi-static biomechanics of a twin: net moments, muscle activations, intervertebral loads.

Per frame (a posture plus external loads):
1. inverse dynamics (MuJoCo `mj_inverse`): the generalised forces the muscles must supply at
   the 15 lumbar coordinates, after gravity, passive joint stiffness and external loads
   (inertia too when velocities and accelerations are given);
2. static optimisation (DAQP active set, warm-started along trajectories): minimise sum(a^2) + w sum(r^2) subject to
   R^T (a * F_max * f_L * cos(alpha)) + r = tau at every coordinate and 0 <= a <= cap, with
   reserve actuators r heavily penalised and reported;
3. intervertebral loads: for each level, everything that acts on the bodies above it (gravity,
   inertia, external loads, and every muscle path segment that crosses the level) balanced by
   the joint; expressed in the upper vertebra's frame as compression along its axis and
   anterior-posterior and lateral shear.

Sign conventions: compression_N > 0 squeezes the disc; ap_shear_N > 0 pushes the upper
vertebra anteriorly on the lower; lat_shear_N > 0 pushes it to the right.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import ctypes

import daqp
import numpy as np
from scipy import optimize

from lumbar_twin.errors import LumbarTwinError
from twin.engines import Frame, MujocoEngine, OpenSimEngine
from twin.loads import ExternalLoad, hand_load  # noqa: F401  (re-exported)
from twin.muscle_curves import active_force_length  # noqa: F401  (re-exported)
from twin.spec import LEVELS, SIDES, ModelSpec

#: Weight of a squared reserve moment (per (N m)^2) against a squared activation.
RESERVE_WEIGHT = 1.0e3
#: A reserve carrying more than this share of a net moment flags the solution.
RESERVE_SHARE_LIMIT = 0.05
#: Net moments below this are too small for a share to mean anything [N m].
RESERVE_SHARE_FLOOR_NM = 1.0

ENGINES = {"mujoco": MujocoEngine, "opensim": OpenSimEngine}


@dataclass(frozen=True)
class LevelLoad:
    compression_N: float
    ap_shear_N: float
    lat_shear_N: float


#: Who supplies a moment of each sign about each kind of coordinate (signs as measured on the
#: template: +flexion flexes, +lateral bends to the right, +rotation turns to the left).
_MOVERS = {"flexion": ("the extensors", "the flexors"),
           "lateral": ("the muscles bending the trunk to the left", "the muscles bending the trunk to the right"),
           "rotation": ("the muscles turning the trunk to the right", "the muscles turning the trunk to the left")}


@dataclass(frozen=True)
class Shortfall:
    """Where the muscles fall short: the coordinate whose reserve carries the most, in N m."""

    coordinate: str
    needed_Nm: float  # the net moment the muscles must supply (signed, generalised force)
    muscles_Nm: float  # what they supply (the rest is the reserve's)

    @property
    def headline(self) -> str:
        """e.g. 'L5-S1 flexion: the extensors give 95 N m of the 160 N m needed'."""
        level, _, kind = self.coordinate.rpartition("_")
        movers = _MOVERS.get(kind, ("the muscles", "the muscles"))[self.needed_Nm > 0]
        given = self.muscles_Nm if self.needed_Nm > 0 else -self.muscles_Nm
        return (f"{level.replace('_', '-')} {kind}: {movers} give {max(given, 0.0):.0f} N m of the "
                f"{abs(self.needed_Nm):.0f} N m needed")


def shortfall(coordinate_names, needed_Nm: np.ndarray, reserve_Nm: np.ndarray) -> Shortfall:
    """The coordinate where the reserve carries the most moment (N m), among those whose reserve
    share is above RESERVE_SHARE_LIMIT when any is: a large share of a near-zero moment is not
    what stops a weak patient."""
    needed, reserve = np.asarray(needed_Nm, float), np.asarray(reserve_Nm, float)
    shares = np.abs(reserve) / np.maximum(np.abs(needed), RESERVE_SHARE_FLOOR_NM)
    candidates = np.where(shares > RESERVE_SHARE_LIMIT, np.abs(reserve), -np.inf)
    k = int(np.argmax(candidates)) if np.isfinite(candidates).any() else int(np.argmax(np.abs(reserve)))
    return Shortfall(coordinate_names[k], float(needed[k]), float(needed[k] - reserve[k]))


@dataclass(frozen=True)
class StaticsResult:
    """One frame's answer. Arrays are in the spec's fascicle and coordinate order."""

    fascicle_names: tuple[str, ...]
    coordinate_names: tuple[str, ...]
    activations: np.ndarray
    forces_N: np.ndarray
    net_moments_Nm: np.ndarray  # what the muscles (plus reserves) must supply
    reserve_Nm: np.ndarray
    levels: dict[str, LevelLoad]
    groups: dict[str, dict[str, float]] = field(default_factory=dict)  # force-weighted activations

    @property
    def reserve_shares(self) -> np.ndarray:
        return np.abs(self.reserve_Nm) / np.maximum(np.abs(self.net_moments_Nm), RESERVE_SHARE_FLOOR_NM)

    @property
    def reserve_share(self) -> float:
        """The largest share of any net moment carried by a reserve actuator."""
        return float(self.reserve_shares.max())

    @property
    def flagged(self) -> bool:
        return self.reserve_share > RESERVE_SHARE_LIMIT

    @property
    def shortfall(self) -> Shortfall:
        return shortfall(self.coordinate_names, self.net_moments_Nm, self.reserve_Nm)

    def to_dict(self) -> dict:
        return {
            "levels": {lv: vars(load) for lv, load in self.levels.items()},
            "activations": self.groups,
            "reserve_share": self.reserve_share,
            "reserve_shares": dict(zip(self.coordinate_names, map(float, self.reserve_shares))),
            "flagged": self.flagged,
            "shortfall": self.shortfall.headline if self.flagged else None,
        }


class Statics:
    """The per-frame solver for one twin. Build once, then call `solve` per frame.

    `engine` answers the frame's kinematics and inverse dynamics: 'mujoco' (fast, the
    default) or 'opensim' (the cross-check); the optimisation and the loads are shared code.
    """

    def __init__(self, spec: ModelSpec, activation_caps: Mapping[str, float] | None = None,
                 engine: str = "mujoco", exponent: int = 2):
        if engine not in ENGINES:
            raise LumbarTwinError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
        if exponent not in (2, 3):
            raise LumbarTwinError(f"activation exponent must be 2 or 3, not {exponent!r}")
        self.exponent = exponent
        self.spec = spec
        self.engine = ENGINES[engine](spec)
        self._fmax = np.array([f.max_isometric_force_N for f in spec.fascicles])
        self._lopt = np.array([f.optimal_fiber_length_m for f in spec.fascicles])
        self._slack = np.array([f.tendon_slack_length_m for f in spec.fascicles])
        self._cos_penn = np.cos([f.pennation_rad for f in spec.fascicles])
        self._height = self._lopt * np.sin([f.pennation_rad for f in spec.fascicles])
        caps = activation_caps or {}
        self._caps = np.array([caps.get(f.group, 1.0) for f in spec.fascicles])
        weights = _group_weights(spec)
        self._group_names = tuple(weights)
        self._group_matrix = np.array([weights[g][side] for g in self._group_names for side in SIDES])
        self._gravity = np.array(spec.gravity_m_per_s2)
        self._fascicle_names, self._coordinate_names = spec.fascicle_names, spec.coordinate_names

        # Per level: the joint, the bodies above it, their mass, the path segments crossing it.
        self._level_joint = {j.level: j for j in spec.joints if j.level}
        self._above = {lv: _subtree(spec, j.child) for lv, j in self._level_joint.items()}
        self._mass_above = {lv: sum(spec.body(b).mass_kg for b in above) for lv, above in self._above.items()}
        crossings = [_crossing_segments(spec, self._above[lv]) for lv in LEVELS]
        level_of_crossing = np.concatenate([np.full(len(c[0]), k) for k, c in enumerate(crossings)])
        self._cross_sum = (level_of_crossing[None, :] == np.arange(len(LEVELS))[:, None]).astype(float)
        self._cross_fascicle, self._cross_upper, self._cross_lower = (
            np.concatenate([c[i] for c in crossings]) for i in range(3))
        self._level_children = [self._level_joint[lv].child for lv in LEVELS]
        self._weight_above = np.array([self._mass_above[lv] for lv in LEVELS])[:, None] * self._gravity
        self._qp = _StaticOptimisation(len(spec.fascicles), len(spec.coordinates), self._caps)

    def solve(self, pose: Mapping[str, float], loads: Sequence[ExternalLoad] = (),
              velocities: Mapping[str, float] | None = None,
              accelerations: Mapping[str, float] | None = None, warm_start: bool = False) -> StaticsResult:
        """One frame. `warm_start` starts from the previous frame's active set (trajectories)."""
        return self.solve_frame(self.engine.frame(pose, loads, velocities, accelerations), warm_start)

    def solve_frame(self, frame: Frame, warm_start: bool = False) -> StaticsResult:
        """A frame already asked of an engine (e.g. precomputed kinematics plus a robot force)."""
        strength = self.strength(frame.lengths)
        activations, reserve = self._qp.solve(frame.moment_arms, strength, frame.net_moments, warm_start)
        if self.exponent == 3:
            activations, reserve = _cubed(frame.moment_arms, strength, frame.net_moments, self._caps,
                                          activations, reserve)
        forces = activations * strength
        means = self._group_matrix @ activations
        groups = {g: {side: float(means[2 * k + j]) for j, side in enumerate(SIDES)} for k, g in enumerate(self._group_names)}
        return StaticsResult(self._fascicle_names, self._coordinate_names, activations, forces,
                             frame.net_moments, reserve, self._level_loads(frame, forces), groups)

    def solve_many(self, poses: Sequence[Mapping[str, float]],
                   loads: Sequence[Sequence[ExternalLoad]] | None = None) -> list[StaticsResult]:
        """A trajectory: consecutive frames warm-start each other."""
        loads = loads if loads is not None else [()] * len(poses)
        return [self.solve(p, ld, warm_start=k > 0) for k, (p, ld) in enumerate(zip(poses, loads))]

    def strength(self, mtu_lengths: np.ndarray) -> np.ndarray:
        """(n_fascicles,) force along the tendon at full activation and zero velocity [N]:
        F_max cos(alpha_0) f_L(fibre length / optimal), fibres of constant height, rigid tendon."""
        return self._fmax * self._cos_penn * active_force_length(self.normalized_fiber_lengths(mtu_lengths))

    def normalized_fiber_lengths(self, mtu_lengths: np.ndarray) -> np.ndarray:
        """(n_fascicles,) fibre length / optimal fibre length for musculotendon lengths [m]."""
        return self._fiber_lengths(mtu_lengths) / self._lopt

    def _fiber_lengths(self, mtu_lengths: np.ndarray) -> np.ndarray:
        along = np.maximum(mtu_lengths - self._slack, 1e-6)  # rigid tendon, constant fibre height
        return np.sqrt(along**2 + self._height**2)

    def _level_loads(self, frame: Frame, forces: np.ndarray) -> dict[str, LevelLoad]:
        """Loads on the bodies above each level, balanced by the level's joint."""
        direction = frame.points[self._cross_lower] - frame.points[self._cross_upper]  # pulls the upper part down
        direction *= (forces[self._cross_fascicle] / np.sqrt(np.einsum("ij,ij->i", direction, direction)))[:, None]
        total = self._weight_above + self._cross_sum @ direction  # (levels, 3)
        for k, level in enumerate(LEVELS):
            above = self._above[level]
            for body, force in frame.external:
                if body in above:
                    total[k] += force
            if frame.inertial is not None:
                total[k] += sum(frame.inertial[b] for b in above)
        rotations = np.array([frame.rotations[b] for b in self._level_children])  # (levels, 3, 3)
        local = np.einsum("kji,kj->ki", rotations, total)  # in each upper vertebra's frame
        return {level: LevelLoad(compression_N=float(-local[k, 1]), ap_shear_N=float(local[k, 0]),
                                 lat_shear_N=float(local[k, 2])) for k, level in enumerate(LEVELS)}


class _StaticOptimisation:
    """min sum(a^2) + w sum(r^2)  s.t.  A a + r = tau,  0 <= a <= cap   (DAQP, dual active set).

    A = R^T diag(strength): moment arms times each fascicle's available force. An active-set
    method gives the exact optimum of this small dense QP, and along a trajectory the previous
    frame's active set (its dual solution) makes the next solve take a few iterations.
    """

    _INF = 1e30  # DAQP's "no bound"

    def __init__(self, n: int, m: int, caps: np.ndarray):
        self._n, self._m = n, m
        self._cost = np.diag(np.r_[np.full(n, 2.0), np.full(m, 2.0 * RESERVE_WEIGHT)])
        self._linear = np.zeros(n + m)
        self._rows = np.zeros((m, n + m))
        self._rows[:, n:] = np.eye(m)
        # Simple bounds on [a, r] first, then the m equality rows (sense 5 = equality).
        self._upper = np.r_[caps, np.full(m, self._INF), np.zeros(m)]
        self._lower = np.r_[np.zeros(n), np.full(m, -self._INF), np.zeros(m)]
        self._sense = np.r_[np.zeros(n + m), np.full(m, 5)].astype(ctypes.c_int)
        self._dual = None

    def solve(self, arms: np.ndarray, strength: np.ndarray, tau: np.ndarray,
              warm: bool = False) -> tuple[np.ndarray, np.ndarray]:
        n = self._n
        self._rows[:, :n] = (arms * strength[:, None]).T
        self._upper[-self._m:] = tau
        self._lower[-self._m:] = tau
        start = {"dual_start": self._dual} if warm and self._dual is not None else {}
        x, _, flag, info = daqp.solve(self._cost, self._linear, self._rows, self._upper, self._lower,
                                      self._sense, **start)
        if flag < 1 and start:  # a stale active set: solve from scratch
            x, _, flag, info = daqp.solve(self._cost, self._linear, self._rows, self._upper, self._lower,
                                          self._sense)
        if flag < 1:
            raise LumbarTwinError(f"static optimisation failed (DAQP exit flag {flag})")
        self._dual = info["lam"]
        return np.clip(x[:n], 0.0, self._upper[:n]), x[n:n + self._m]


def _cubed(arms, strength, tau, caps, a0, r0) -> tuple[np.ndarray, np.ndarray]:
    """min sum(a^3) + w sum(r^2) under the same constraints (SLSQP from the squared optimum).

    The cubed criterion spreads load over more muscles (Crowninshield & Brand 1981); it is not
    a QP, so it costs tens of milliseconds a frame instead of a fraction of one.
    """
    n, m = len(a0), len(r0)
    matrix = np.hstack([(arms * strength[:, None]).T, np.eye(m)])

    def cost(x):
        a, r = x[:n], x[n:]
        return (np.sum(a**3) + RESERVE_WEIGHT * np.sum(r**2),
                np.r_[3 * a**2, 2 * RESERVE_WEIGHT * r])

    result = optimize.minimize(
        cost, np.r_[a0, r0], jac=True, method="SLSQP",
        bounds=[(0.0, c) for c in caps] + [(None, None)] * m,
        constraints=[{"type": "eq", "fun": lambda x: matrix @ x - tau, "jac": lambda x: matrix}],
        options={"maxiter": 500, "ftol": 1e-12},
    )
    if not result.success:
        raise LumbarTwinError(f"static optimisation (cubed) failed: {result.message}")
    return np.clip(result.x[:n], 0.0, caps), result.x[n:]


def _crossing_segments(spec: ModelSpec, above: set[str]):
    """Path segments that cross a level: (fascicle index, point above, point below), where
    points index all fascicles' path points in order (Frame.points)."""
    fascicle, inside, outside, offset = [], [], [], 0
    for i, f in enumerate(spec.fascicles):
        for k in range(len(f.points) - 1):
            a, b = f.points[k].body in above, f.points[k + 1].body in above
            if a != b:
                fascicle.append(i)
                inside.append(offset + (k if a else k + 1))
                outside.append(offset + (k + 1 if a else k))
        offset += len(f.points)
    return np.array(fascicle, int), np.array(inside, int), np.array(outside, int)


def _subtree(spec: ModelSpec, root: str) -> set[str]:
    children: dict[str, list[str]] = {}
    for j in spec.joints:
        children.setdefault(j.parent, []).append(j.child)
    out, stack = set(), [root]
    while stack:
        body = stack.pop()
        out.add(body)
        stack.extend(children.get(body, ()))
    return out


def _group_weights(spec: ModelSpec) -> dict[str, dict[str, np.ndarray]]:
    """Force weights so that weights @ activations is a group's force-weighted activation."""
    fmax = np.array([f.max_isometric_force_N for f in spec.fascicles])
    out: dict[str, dict[str, np.ndarray]] = {}
    for f in spec.fascicles:
        out.setdefault(f.group, {})
    for group in out:
        for side in SIDES:
            mask = np.array([(f.group, f.side) == (group, side) for f in spec.fascicles])
            out[group][side] = np.where(mask, fmax, 0.0) / fmax[mask].sum()
    return out


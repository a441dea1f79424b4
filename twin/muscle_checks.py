"""After a build: every muscle of the written models is the spec's muscle, in its own engine.

MuJoCo (`check_mujoco_muscles`): from the compiled model's own numbers (actuator_lengthrange,
gainprm, biasprm) each actuator's optimal fibre length L0 = (lengthrange[1] - lengthrange[0]) /
(range[1] - range[0]), tendon slack lengthrange[0] - range[0] L0 and force must equal the spec's
within 5 %; over the range of motion MuJoCo's normalised length must stay on the working range;
and `mj_forward` at poses and activations must give (data.actuator_force, active part) the
toolkit's force a F_max cos(alpha) f_L within 5 % of a F_max where the two force-length curves
agree that closely, and within their documented difference plus 1 % elsewhere.

OpenSim (`check_opensim_muscles`): the DeGrooteFregly2016 muscles carry the spec's parameters,
and after `equilibrateMuscles` at every pose OpenSim's own normalised fibre length lies on the
working range and inside the curve's domain (getMin/MaxNormalizedFiberLength).

A failure raises ModelCheckError naming the muscle, the pose and the numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

from lumbar_twin.errors import LumbarTwinError
from twin.motion import range_of_motion_poses
from twin.mujoco_model import equivalent_lengths
from twin.muscle_curves import active_force_length, mujoco_active, mujoco_curve_fit
from twin.spec import ModelSpec
from twin.statics import Statics

#: Relative tolerance on compiled parameters and on force (fraction of a F_max cos alpha).
TOLERANCE = 0.05
#: Activations at which MuJoCo's force is compared with the toolkit's.
ACTIVATIONS = (0.1, 0.5, 1.0)
#: Poses of the force comparison: neutral and the 27 global postures of `twin.motion`.
FORCE_POSES = 28
#: Poses of the OpenSim fibre check: neutral, the global postures and the first random ones.
OPENSIM_POSES = 60
_ROUNDING = 1e-4  # MJCF keeps 6 significant digits: what a written file moves a normalised length


class ModelCheckError(LumbarTwinError):
    """A written model whose muscles are not the spec's."""


@dataclass(frozen=True)
class MujocoMuscleReport:
    """Largest deviations found (all within tolerance, or the check raised)."""

    max_parameter_error: float  # relative, over L0, tendon slack and force
    fiber_range: tuple[float, float]  # min and max normalised fibre length over the range of motion
    max_force_error: float  # |MuJoCo - toolkit| / (a F_max cos alpha), all poses
    max_force_error_in_band: float  # the same where the curves agree within 5 %
    compared: int  # (actuator, pose, activation) triples
    in_band: int  # of which with the fibre where the curves agree within 5 %


def compiled_muscle_parameters(model: mujoco.MjModel, names) -> dict[str, np.ndarray]:
    """MuJoCo's own optimal length L0, tendon slack and force per named actuator."""
    ids = np.array([model.actuator(n).id for n in names])
    lr = model.actuator_lengthrange[ids]
    gain = model.actuator_gainprm[ids]
    lopt = (lr[:, 1] - lr[:, 0]) / (gain[:, 1] - gain[:, 0])
    return {"optimal_fiber_length_m": lopt, "tendon_slack_length_m": lr[:, 0] - gain[:, 0] * lopt,
            "force_N": gain[:, 2], "ids": ids}


def check_mujoco_muscles(spec: ModelSpec, model: mujoco.MjModel) -> MujocoMuscleReport:
    names = spec.fascicle_names
    compiled = compiled_muscle_parameters(model, names)
    ids = compiled["ids"]
    lopt = np.array([f.optimal_fiber_length_m for f in spec.fascicles])
    slack = np.array([f.tendon_slack_length_m for f in spec.fascicles])
    fmax = np.array([f.max_isometric_force_N for f in spec.fascicles])
    alpha = np.array([f.pennation_rad for f in spec.fascicles])
    worst = 0.0
    for key, want, label in (("optimal_fiber_length_m", lopt, "optimal fibre length"),
                             ("tendon_slack_length_m", slack, "tendon slack length"),
                             ("force_N", fmax, "maximum force")):
        error = np.abs(compiled[key] / want - 1.0)
        k = int(np.argmax(error))
        if error[k] > TOLERANCE:
            raise ModelCheckError(
                f"MuJoCo actuator {names[k]}: compiled {label} {compiled[key][k]:.6g} against the spec's "
                f"{want[k]:.6g} ({error[k]:.1%} off, more than {TOLERANCE:.0%})")
        worst = max(worst, float(error[k]))
    bias = model.actuator_biasprm[ids, :9]
    if not np.allclose(bias, model.actuator_gainprm[ids, :9], rtol=1e-9, atol=0.0):
        k = int(np.argmax(np.abs(bias - model.actuator_gainprm[ids, :9]).max(axis=1)))
        raise ModelCheckError(f"MuJoCo actuator {names[k]}: passive (biasprm) and active (gainprm) muscle "
                              f"parameters differ")

    poses = range_of_motion_poses(spec)
    lo, hi = spec.fiber_working_range
    data = mujoco.MjData(model)
    qpos = np.array([model.jnt_qposadr[model.joint(c).id] for c in spec.coordinate_names])
    gain = model.actuator_gainprm[ids]
    lr = model.actuator_lengthrange[ids]
    mj_lopt = compiled["optimal_fiber_length_m"]
    fiber_lo, fiber_hi = np.inf, -np.inf
    # MuJoCo's straight-line stand-in for a pennated fibre departs from it by a computed gap
    margin = _ROUNDING + np.array([equivalent_lengths(f, tuple(spec.fiber_working_range))[2] for f in spec.fascicles])
    curve = mujoco_curve_fit(tuple(spec.fiber_working_range))
    band = curve.within_5_percent
    strength = Statics(spec).strength  # the toolkit's own force model
    max_error = max_band_error = 0.0
    compared = in_band = 0
    for p, pose in enumerate(poses):
        data.qpos[:] = 0.0
        data.qpos[qpos] = pose
        data.act[:] = 0.0
        data.ctrl[:] = 0.0
        mujoco.mj_forward(model, data)
        length = data.actuator_length[ids].copy()
        fiber = gain[:, 0] + (length - lr[:, 0]) / mj_lopt  # MuJoCo's own normalised length
        fiber_lo, fiber_hi = min(fiber_lo, float(fiber.min())), max(fiber_hi, float(fiber.max()))
        outside = (fiber < lo - margin) | (fiber > hi + margin)
        if outside.any():
            k = int(np.argmax(outside))
            raise ModelCheckError(
                f"MuJoCo actuator {names[k]}: normalised fibre length {fiber[k]:.3f} at pose "
                f"{_pose_text(spec, pose)} is outside the working range {lo:g}-{hi:g}")
        if p >= FORCE_POSES:
            continue
        passive = -data.actuator_force[ids].copy()
        expected = strength(length)  # toolkit: F_max cos(alpha) f_L at full activation
        inside = (fiber >= band[0]) & (fiber <= band[1])
        # 5 % where the two curves agree that closely; elsewhere their own difference + 1 %
        gap = np.abs(mujoco_active(fiber, curve.lmin, curve.lmax) - active_force_length(fiber))
        tolerance = np.where(inside, TOLERANCE, np.maximum(TOLERANCE, gap + 0.01))
        for a in ACTIVATIONS:
            data.act[:] = a
            data.ctrl[:] = a
            mujoco.mj_forward(model, data)
            active = -data.actuator_force[ids] - passive
            scale = a * fmax * np.cos(alpha)
            error = np.abs(active - a * expected) / scale
            bad = error > tolerance
            if bad.any():
                k = int(np.argmax(error - tolerance))
                raise ModelCheckError(
                    f"MuJoCo actuator {names[k]}: active force {active[k]:.1f} N at activation {a:g} and pose "
                    f"{_pose_text(spec, pose)} (fibre {fiber[k]:.3f} of optimal) against the toolkit's "
                    f"{a * expected[k]:.1f} N ({error[k]:.1%} of {scale[k]:.0f} N, allowed {tolerance[k]:.1%})")
            max_error = max(max_error, float(error.max()))
            if inside.any():
                max_band_error = max(max_band_error, float(error[inside].max()))
            compared += len(ids)
            in_band += int(inside.sum())
    return MujocoMuscleReport(worst, (fiber_lo, fiber_hi), max_error, max_band_error, compared, in_band)


@dataclass(frozen=True)
class OpenSimMuscleReport:
    max_parameter_error: float
    fiber_range: tuple[float, float]  # OpenSim's normalised fibre length, min and max over the poses
    poses: int


def check_opensim_muscles(spec: ModelSpec, model) -> OpenSimMuscleReport:
    """`model`: an OpenSim Model (e.g. read back from model.osim); it is initialised here."""
    import opensim as osim

    state = model.initSystem()
    lo, hi = spec.fiber_working_range
    muscles = []
    worst = 0.0
    for f in spec.fascicles:
        try:
            muscle = osim.DeGrooteFregly2016Muscle.safeDownCast(model.getMuscles().get(f.name))
        except Exception as exc:  # SWIG raises its own type for an unknown name
            raise ModelCheckError(f"OpenSim model has no muscle {f.name}") from exc
        if muscle is None:
            raise ModelCheckError(f"OpenSim muscle {f.name} is not a DeGrooteFregly2016Muscle")
        for got, want, label in ((muscle.get_optimal_fiber_length(), f.optimal_fiber_length_m, "optimal fibre length"),
                                 (muscle.get_tendon_slack_length(), f.tendon_slack_length_m, "tendon slack length"),
                                 (muscle.get_max_isometric_force(), f.max_isometric_force_N, "maximum force")):
            error = abs(got / want - 1.0)
            if error > TOLERANCE:
                raise ModelCheckError(f"OpenSim muscle {f.name}: {label} {got:.6g} against the spec's {want:.6g}")
            worst = max(worst, error)
        domain = (muscle.getMinNormalizedFiberLength(), muscle.getMaxNormalizedFiberLength())
        muscles.append((f.name, muscle, max(lo, domain[0]), min(hi, domain[1])))
    coords = [model.getCoordinateSet().get(name) for name in spec.coordinate_names]
    poses = range_of_motion_poses(spec)[:OPENSIM_POSES]
    fiber_lo, fiber_hi = math.inf, -math.inf
    for pose in poses:
        for coord, value in zip(coords, pose):
            coord.setValue(state, float(value), False)
        model.assemble(state)
        model.equilibrateMuscles(state)
        model.realizeVelocity(state)
        for name, muscle, low, high in muscles:
            n = muscle.getNormalizedFiberLength(state)
            fiber_lo, fiber_hi = min(fiber_lo, n), max(fiber_hi, n)
            if not low - _ROUNDING <= n <= high + _ROUNDING:
                raise ModelCheckError(
                    f"OpenSim muscle {name}: normalised fibre length {n:.3f} (fibre {muscle.getFiberLength(state) * 1000:.1f} mm) "
                    f"at pose {_pose_text(spec, pose)} is outside the working range {low:g}-{high:g}")
    return OpenSimMuscleReport(worst, (fiber_lo, fiber_hi), len(poses))


def _pose_text(spec: ModelSpec, pose: np.ndarray) -> str:
    moved = [f"{name} {math.degrees(v):.1f} deg" for name, v in zip(spec.coordinate_names, pose) if abs(v) > 1e-12]
    return "neutral" if not moved else "(" + ", ".join(moved[:6]) + (", ..." if len(moved) > 6 else "") + ")"

"""Independent verification: the exported profile re-solved by OpenSim's own tools.

The two-engine check (planning/verify.py) shares the static optimisation and the load code
with the search; only kinematics differ, so it checks the models, not the numbers. This module
re-solves the profile on the exported model.osim with a separate code path, OpenSim's own
AnalyzeTool:

1. StaticOptimization (IPOPT) over the chosen device samples, with the robot's force as an
   ExternalForce on the contact body at the pad point (both in that body's frame), and
   reserve CoordinateActuators whose cost equals the toolkit's: OpenSim charges
   (r / F_opt)^2 for a reserve moment r, the toolkit w r^2 (twin.statics.RESERVE_WEIGHT), so
   F_opt = 1 / sqrt(w);
2. JointReaction over the same samples, fed an actuator-only forces file, giving each level's
   reaction force on the upper vertebra in its own frame: compression, AP and lateral shear.

Measured pitfalls (docs/planning.md, shared NOTES): the states file gives every speed zero
(quasi-static, as the toolkit; a coordinates file makes StaticOptimization differentiate
splines into velocities and accelerations); IPOPT's convergence criterion 1e-6 (1e-8 sometimes
reports failure with balanced accelerations); StaticOptimization needs at least 6 frames; in
OpenSim 4.6 JointReaction reads a forces file's first n-actuator columns but looks each actuator
up by its position in the whole file, and StaticOptimization's own file lists the joint springs
first, so it is rewritten with actuators only.

StaticOptimization sets each muscle's force to activation x active fibre force (rigid tendon,
no passive fibre force, force-velocity 1 at zero speed): the toolkit's quasi-static model, so
the two agree to the solvers' tolerance (about 0.2 N compression and 2e-4 activation measured
on the sample twin), and the tolerances below (1 % compression, 0.005 activation) catch a real
disagreement. About 70 ms a frame on a 124-muscle twin.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import opensim as osim

from lumbar_twin.errors import LumbarTwinError
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
#: IPOPT convergence criterion (1e-8 sometimes fails with balanced accelerations; NOTES.md).
CONVERGENCE = 1e-6
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


def verify_with_opensim(model_path: str | Path, spec: ModelSpec, plan: Plan, poses: list[dict[str, float]],
                        forces_N: np.ndarray, claimed: Evaluation, net_moments_Nm: np.ndarray,
                        frames: np.ndarray | None = None, max_isometric_force_N: np.ndarray | None = None,
                        label: str = "point estimate") -> OpenSimVerification:
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
    start = time.perf_counter()
    frames = verification_frames(claimed, plan) if frames is None else np.asarray(frames, int)
    if len(frames) < 6:
        raise LumbarTwinError("OpenSim's StaticOptimization needs at least 6 frames")
    times = claimed.times_s[frames]
    with tempfile.TemporaryDirectory(prefix="lumbar-twin-osim-") as tmp:
        activations, reserves, reactions = _solve(Path(tmp), Path(model_path), spec, plan.contact, times,
                                                  [poses[k] for k in frames], forces_N[frames], max_isometric_force_N)
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
    return OpenSimVerification(not problems, tuple(problems), frames, evaluation, difference,
                               time.perf_counter() - start, label)


# -- OpenSim's tools ---------------------------------------------------------------------------

def _solve(tmp: Path, model_path: Path, spec: ModelSpec, contact_name: str, times: np.ndarray,
           poses: list[dict], forces: np.ndarray, fmax: np.ndarray | None):
    """StaticOptimization, then JointReaction: (activations (n, fascicles), reserve moments
    (n, coordinates), reactions (n, levels, 3) on the upper vertebra in its frame)."""
    model = osim.Model(str(model_path))
    muscles = model.getMuscles()
    if fmax is not None:
        for name, value in zip(spec.fascicle_names, fmax):
            muscles.get(name).setMaxIsometricForce(float(value))
    for coord in spec.coordinates:
        reserve = osim.CoordinateActuator(coord.name)
        reserve.setName(f"reserve_{coord.name}")
        reserve.setOptimalForce(float(RESERVE_OPTIMAL_FORCE_NM))
        reserve.setMinControl(-1e6)
        reserve.setMaxControl(1e6)
        model.addForce(reserve)
    model.finalizeConnections()
    model_file = tmp / "model_with_reserves.osim"
    model.printToXML(str(model_file))
    model.initSystem()

    contact = spec.contact(contact_name)
    external = _external_loads(tmp, contact, times, forces)
    states = states_file(tmp, model, spec, times, poses)
    t0, t1 = float(times[0]), float(times[-1])

    so = osim.StaticOptimization()
    so.setStartTime(t0)
    so.setEndTime(t1)
    so.setUseModelForceSet(True)
    so.setActivationExponent(2)
    so.setUseMusclePhysiology(True)
    so.setConvergenceCriterion(CONVERGENCE)
    so.setMaxIterations(500)
    _run(tmp, "so", model_file, states, external, so, t0, t1)
    activation_table = osim.TimeSeriesTable(str(tmp / "so" / "so_StaticOptimization_activation.sto"))
    force_table = osim.TimeSeriesTable(str(tmp / "so" / "so_StaticOptimization_force.sto"))
    so_times = np.array(activation_table.getIndependentColumn())
    if len(so_times) != len(times) or np.abs(so_times - times).max() > 1e-6:
        raise LumbarTwinError(f"OpenSim's StaticOptimization solved {len(so_times)} of {len(times)} frames")
    activations = _columns(activation_table, spec.fascicle_names)
    reserve_names = [f"reserve_{c}" for c in spec.coordinate_names]
    reserves = _columns(force_table, reserve_names)  # N m

    # JointReaction: actuators only, in the model's actuator order (OpenSim 4.6 reads them by position).
    actuators = model.getActuators()
    names = [actuators.get(k).getName() for k in range(actuators.getSize())]
    forces_file = write_storage(tmp / "actuator_forces.sto", "actuator_forces", times, names,
                                 _columns(force_table, names), in_degrees=False)
    jr = osim.JointReaction()
    jr.setName("JointReaction")
    jr.setStartTime(t0)
    jr.setEndTime(t1)
    jr.setForcesFileName(str(forces_file))
    level_joints = {j.level: j for j in spec.joints if j.level}
    joint_names = [level_joints[lv].name for lv in LEVELS]
    jr.setJointNames(_array(joint_names))
    jr.setOnBody(_array(["child"] * len(LEVELS)))
    jr.setInFrame(_array(["child"] * len(LEVELS)))
    _run(tmp, "jr", model_file, states, external, jr, t0, t1)
    table = osim.TimeSeriesTable(str(tmp / "jr" / "jr_JointReaction_ReactionLoads.sto"))
    reactions = np.stack([
        _columns(table, [f"{name}_on_{level_joints[lv].child}_in_{level_joints[lv].child}_f{axis}" for axis in "xyz"])
        for name, lv in zip(joint_names, LEVELS)], axis=1)
    return activations, reserves, reactions


def _run(tmp: Path, name: str, model_file: Path, states: Path, external: Path, analysis, t0: float, t1: float):
    tool = osim.AnalyzeTool()
    tool.setName(name)
    tool.setModelFilename(str(model_file))
    tool.setStatesFileName(str(states))
    tool.setExternalLoadsFileName(str(external))
    tool.setLowpassCutoffFrequency(-1)
    tool.setInitialTime(t0)
    tool.setFinalTime(t1)
    tool.setResultsDir(str(tmp / name))
    tool.getAnalysisSet().cloneAndAppend(analysis)
    setup = tmp / f"setup_{name}.xml"
    tool.printToXML(str(setup))  # AnalyzeTool built in code loses its model; run it from its file
    level = osim.Logger.getLevelString()
    if level in ("warn", "info"):  # JointReaction warns that a forces file overrides the states' fibre state: by design
        osim.Logger.setLevelString("error")
    try:
        ok = osim.AnalyzeTool(str(setup)).run()
    except Exception as exc:  # OpenSim raises its own exception types through SWIG
        raise LumbarTwinError(f"OpenSim's {type(analysis).__name__} failed: {exc}") from exc
    finally:
        osim.Logger.setLevelString(level)
    if not ok:
        raise LumbarTwinError(f"OpenSim's {type(analysis).__name__} did not run")


def states_file(tmp: Path, model: osim.Model, spec: ModelSpec, times: np.ndarray, poses: list[dict]) -> Path:
    """tmp/states.sto: every coordinate's value per frame and every speed zero (quasi-static).
    `model` must have had initSystem() (absolute paths of its coordinates)."""
    coords = model.getCoordinateSet()
    columns, values = [], []
    for name in spec.coordinate_names:
        path = coords.get(name).getAbsolutePathString()
        columns += [f"{path}/value", f"{path}/speed"]
        values += [[pose.get(name, 0.0) for pose in poses], [0.0] * len(poses)]
    for name in spec.fascicle_names:  # not used by StaticOptimization; given to keep OpenSim from warning
        columns.append(f"{model.getMuscles().get(name).getAbsolutePathString()}/activation")
        values.append([0.5] * len(poses))
    return write_storage(tmp / "states.sto", "states", times, columns, np.array(values).T, in_degrees=False)


def _external_loads(tmp: Path, contact, times: np.ndarray, forces: np.ndarray) -> Path:
    """The robot's force as an ExternalForce on the contact body at the pad, in the body frame."""
    point = np.tile(np.asarray(contact.location_m, float), (len(times), 1))
    data = write_storage(tmp / "robot_force.mot", "robot_force", times,
                          [f"robot_force_v{a}" for a in "xyz"] + [f"robot_force_p{a}" for a in "xyz"]
                          + [f"robot_torque_{a}" for a in "xyz"],
                          np.hstack([forces, point, np.zeros_like(forces)]), in_degrees=False)
    force = osim.ExternalForce()
    force.setName("robot")
    force.set_applied_to_body(contact.body)
    force.set_force_expressed_in_body(contact.body)
    force.set_point_expressed_in_body(contact.body)
    force.set_force_identifier("robot_force_v")
    force.set_point_identifier("robot_force_p")
    force.set_torque_identifier("robot_torque_")
    force.set_data_source_name("robot_force")
    loads = osim.ExternalLoads()
    loads.setDataFileName(str(data))
    loads.cloneAndAppend(force)
    path = tmp / "external_loads.xml"
    loads.printToXML(str(path))
    return path


def write_storage(path: Path, name: str, times: np.ndarray, columns: list[str], values: np.ndarray,
                  in_degrees: bool) -> Path:
    """An OpenSim storage file (.sto/.mot): `values` (rows, columns) under a time column."""
    lines = [name, "version=1", f"nRows={len(times)}", f"nColumns={len(columns) + 1}",
             f"inDegrees={'yes' if in_degrees else 'no'}", "endheader", "\t".join(["time", *columns])]
    lines += ["\t".join([f"{t:.9f}", *(f"{v:.12g}" for v in row)]) for t, row in zip(times, values)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _columns(table: osim.TimeSeriesTable, names) -> np.ndarray:
    labels = set(table.getColumnLabels())
    missing = [n for n in names if n not in labels]
    if missing:
        raise LumbarTwinError(f"OpenSim's results lack the columns {missing[:3]}")
    return np.array([table.getDependentColumn(n).to_numpy() for n in names]).T


def _array(items: list[str]) -> osim.ArrayStr:
    out = osim.ArrayStr()
    for item in items:
        out.append(item)
    return out


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

"""ModelSpec -> MuJoCo model (MJCF), built in code with `mujoco.MjSpec`.

Same numbers as the OpenSim builder: bodies keep OpenSim's axes (x anterior, y superior,
z right) and gravity points along -y; each intervertebral joint is three hinges in the
OpenSim axis order; each fascicle is a spatial tendon through one site per path point with a
muscle actuator of the same name.

MuJoCo's muscle (engine_util_misc.c, mju_muscleGain) has no tendon slack or optimal length of
its own: it normalises length as L = range[0] + (len - lengthrange[0]) / L0 with
L0 = (lengthrange[1] - lengthrange[0]) / (range[1] - range[0]). With lengthrange the tendon's
length range over the range of motion (`twin.motion`) and range = (lengthrange - slack) / lopt,
L0 is the spec's optimal fibre length and lengthrange[0] - range[0] L0 its tendon slack length,
so L is the rigid-tendon fibre length. A pennated fibre (constant height lopt sin(alpha)) is
longer than its projection on the tendon: L0 and slack are then the straight line that best
maps tendon length to normalised fibre length over the working range (`equivalent_lengths`;
for psoas, 10.7 deg: L0 2.0 % longer, slack 4.6 mm (2-5 %) shorter, L within 0.0063 of the
fibre's normalised length). The range is written into gainprm and
biasprm directly: `set_to_muscle` keeps MuJoCo's default for any negative value. Force is the
spec's F_max cos(pennation at optimum), the force along the tendon at optimal length (MuJoCo has
no pennation); lmin, lmax and fpmax are fitted to the toolkit's curves (`twin.muscle_curves`).
"""
from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

from twin.kinematics import orientation_matrix
from twin.motion import range_of_motion_poses
from twin.muscle_curves import mujoco_curve_fit
from twin.spec import GROUP_COLORS, ModelSpec


def build_mjspec(spec: ModelSpec) -> mujoco.MjSpec:
    mj = mujoco.MjSpec()
    mj.modelname = spec.name
    mj.compiler.degree = False
    mj.compiler.fusestatic = False
    mj.compiler.LRopt.mode = mujoco.mjtLRMode.mjLRMODE_NONE  # ranges are given explicitly
    mj.option.gravity = list(spec.gravity_m_per_s2)

    parent_of = {j.child: j for j in spec.joints}
    handles = {}
    root = spec.bodies[0]
    handles[root.name] = _add_body(mj.worldbody, spec, root.name, (0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0))
    for body in spec.bodies[1:]:
        joint = parent_of[body.name]
        quat = _wxyz(orientation_matrix(joint.orientation_rad))
        handle = _add_body(handles[joint.parent], spec, body.name, joint.location_m, quat)
        for coord in joint.coordinates:
            handle.add_joint(
                name=coord.name, type=mujoco.mjtJoint.mjJNT_HINGE, axis=list(coord.axis), pos=[0, 0, 0],
                range=list(coord.range_rad), limited=mujoco.mjtLimited.mjLIMITED_FALSE,
                stiffness=coord.stiffness_Nm_per_rad, springref=0.0,
            )
        handles[body.name] = handle

    for contact in spec.contacts:
        handles[contact.body].add_site(name=contact.name, pos=list(contact.location_m), size=[0.012, 0, 0],
                                       rgba=[0.2, 0.4, 0.9, 1.0])
    for fascicle in spec.fascicles:
        tendon = mj.add_tendon(name=fascicle.name)
        for k, point in enumerate(fascicle.points):
            site = f"{fascicle.name}_p{k}"
            handles[point.body].add_site(name=site, pos=list(point.location_m), size=[0.002, 0, 0],
                                         rgba=_group_rgba(fascicle.group))
            tendon.wrap_site(site)
        tendon.rgba = _group_rgba(fascicle.group)

    ranges = tendon_length_ranges(mj.compile(), spec)
    curve = mujoco_curve_fit(tuple(spec.fiber_working_range))
    for fascicle, (lo, hi) in zip(spec.fascicles, ranges):
        fiber, slack, _ = equivalent_lengths(fascicle, tuple(spec.fiber_working_range))
        act = mj.add_actuator(name=fascicle.name, target=fascicle.name, trntype=mujoco.mjtTrn.mjTRN_TENDON)
        act.set_to_muscle(tausmooth=0.0)  # muscle gain, bias and activation dynamics (defaults)
        prm = np.array(act.gainprm)
        prm[:9] = [(lo - slack) / fiber, (hi - slack) / fiber,
                   fascicle.max_isometric_force_N * np.cos(fascicle.pennation_rad), prm[3],
                   curve.lmin, curve.lmax, prm[6], curve.fpmax, prm[8]]
        act.gainprm = prm
        act.biasprm = prm  # mju_muscleBias reads its own copy of the same parameters
        act.lengthrange = [lo, hi]
    return mj


def equivalent_lengths(fascicle, working: tuple[float, float]) -> tuple[float, float, float]:
    """(L0 [m], tendon slack [m], gap) of a MuJoCo muscle, which has no pennation, for `fascicle`.

    Normalised fibre length n = sqrt(a^2 + sin^2 alpha) with a = (length - slack) / lopt along
    the tendon; the least-squares line n ~ c0 + c1 a over the working range gives
    L0 = lopt / c1 and slack - c0 L0; `gap` is the largest |MuJoCo's normalised length - n| over
    the working range. Without pennation these are the spec's own numbers and gap is 0.
    """
    lopt, slack = fascicle.optimal_fiber_length_m, fascicle.tendon_slack_length_m
    sin2 = np.sin(fascicle.pennation_rad) ** 2
    if sin2 == 0.0:
        return lopt, slack, 0.0
    n = np.linspace(*working, 400)
    a = np.sqrt(n**2 - sin2)
    c1, c0 = np.polyfit(a, n, 1)
    return lopt / c1, slack - c0 * lopt / c1, float(np.max(np.abs(c0 + c1 * a - n)))


def build_mujoco(spec: ModelSpec) -> mujoco.MjModel:
    return build_mjspec(spec).compile()


def write_mujoco(spec: ModelSpec, path: str | Path) -> None:
    """Write MJCF to `path` (callers write into a staging folder; see twin.build)."""
    mj = build_mjspec(spec)
    mj.compile()
    Path(path).write_text(mj.to_xml(), encoding="utf-8")


def tendon_length_ranges(model: mujoco.MjModel, spec: ModelSpec) -> np.ndarray:
    """(n_fascicles, 2) min and max tendon length over the range of motion (`twin.motion`).

    `model` holds the spec's joints and tendons (in spec order). No margin: the range only sets
    MuJoCo's length normalisation, and the template keeps the fibres on their working range
    over exactly these poses.
    """
    lengths = tendon_lengths(model, spec, range_of_motion_poses(spec))
    return np.column_stack([lengths.min(axis=0), lengths.max(axis=0)])


def tendon_lengths(model: mujoco.MjModel, spec: ModelSpec, poses: np.ndarray) -> np.ndarray:
    """(n_poses, n_fascicles) tendon lengths [m]; poses are rows of spec-ordered angles."""
    data = mujoco.MjData(model)
    qpos = np.array([model.jnt_qposadr[model.joint(c).id] for c in spec.coordinate_names])
    tendon = np.array([model.tendon(f).id for f in spec.fascicle_names])
    out = np.empty((len(poses), len(tendon)))
    for k, pose in enumerate(poses):
        data.qpos[:] = 0.0
        data.qpos[qpos] = pose
        mujoco.mj_kinematics(model, data)
        mujoco.mj_tendon(model, data)
        out[k] = data.ten_length[tendon]
    return out


def _add_body(parent, spec: ModelSpec, name: str, pos, quat):
    body = spec.body(name)
    handle = parent.add_body(name=name, pos=list(pos), quat=list(quat))
    handle.explicitinertial = True
    handle.mass = body.mass_kg
    handle.ipos = list(body.com_m)
    handle.fullinertia = list(body.inertia_kg_m2)
    if name.startswith("L"):  # a vertebral body to see; no contact, no mass
        handle.add_geom(type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[0.02, 0.012, 0], pos=[0.003, 0.024, 0],
                        quat=_wxyz(Rotation.from_euler("x", 90, degrees=True).as_matrix()),
                        contype=0, conaffinity=0, mass=0, rgba=[0.9, 0.88, 0.8, 1])
    return handle


def _wxyz(matrix) -> list[float]:
    x, y, z, w = Rotation.from_matrix(matrix).as_quat()
    return [float(w), float(x), float(y), float(z)]


def _group_rgba(group: str) -> list[float]:
    return [*GROUP_COLORS.get(group, (0.5, 0.5, 0.5)), 1.0]

"""ModelSpec -> MuJoCo model (MJCF), built in code with `mujoco.MjSpec`.

Same numbers as the OpenSim builder: bodies keep OpenSim's axes (x anterior, y superior,
z right) and gravity points along -y; each intervertebral joint is three hinges in the
OpenSim axis order; each fascicle is a spatial tendon through one site per path point with a
muscle actuator of the same name. The muscle's length range is set explicitly so that its
normalised length equals (tendon length - tendon slack length) / optimal fibre length, the
rigid-tendon fibre length of the spec.
"""
from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

from twin.kinematics import orientation_matrix
from twin.spec import GROUP_COLORS, ModelSpec

#: Poses sampled to bound each tendon's length (uniform within the coordinate ranges).
LENGTH_RANGE_SAMPLES = 400
LENGTH_RANGE_SEED = 0


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
    for fascicle, (lo, hi) in zip(spec.fascicles, ranges):
        fiber, slack = fascicle.optimal_fiber_length_m, fascicle.tendon_slack_length_m
        act = mj.add_actuator(name=fascicle.name, target=fascicle.name, trntype=mujoco.mjtTrn.mjTRN_TENDON)
        act.set_to_muscle(
            tausmooth=0.0, range=[(lo - slack) / fiber, (hi - slack) / fiber],
            force=fascicle.max_isometric_force_N,
        )
        act.lengthrange = [lo, hi]
    return mj


def build_mujoco(spec: ModelSpec) -> mujoco.MjModel:
    return build_mjspec(spec).compile()


def write_mujoco(spec: ModelSpec, path: str | Path) -> None:
    """Write MJCF to `path` (callers write into a staging folder; see twin.build)."""
    mj = build_mjspec(spec)
    mj.compile()
    Path(path).write_text(mj.to_xml(), encoding="utf-8")


def tendon_length_ranges(model: mujoco.MjModel, spec: ModelSpec) -> np.ndarray:
    """(n_fascicles, 2) min and max tendon length over neutral and sampled poses, 2 % margin.

    `model` holds the spec's joints and tendons (in spec order), with no actuators yet.
    """
    rng = np.random.default_rng(LENGTH_RANGE_SEED)
    lo, hi = np.array([c.range_rad for c in spec.coordinates]).T
    data = mujoco.MjData(model)
    lengths = []
    for k in range(LENGTH_RANGE_SAMPLES + 1):
        data.qpos[:] = 0.0 if k == 0 else rng.uniform(lo, hi)
        mujoco.mj_kinematics(model, data)
        mujoco.mj_tendon(model, data)
        lengths.append(data.ten_length.copy())
    lengths = np.array(lengths)
    return np.column_stack([lengths.min(axis=0) * 0.98, lengths.max(axis=0) * 1.02])


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

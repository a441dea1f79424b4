"""Narrow adapters over the two engines: the same questions, asked of OpenSim or MuJoCo.

Both take a ModelSpec, build their engine's model from it, and answer in spec order
(fascicles x coordinates) for a pose given as {coordinate name: rad}:
- `lengths(pose)`     -> (n_fascicles,) musculotendon lengths [m]
- `moment_arms(pose)` -> (n_fascicles, n_coordinates) moment arms [m], -dL/dq
- `frame(pose, loads)` -> Frame: all that quasi-static biomechanics needs of one frame
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import mujoco
import numpy as np
import opensim as osim

from lumbar_twin.errors import LumbarTwinError
from twin.loads import ExternalLoad
from twin.mujoco_model import build_mujoco
from twin.opensim_model import build_opensim
from twin.spec import ModelSpec


@dataclass
class Frame:
    """One frame as an engine sees it, in spec order and world (ground) coordinates."""

    lengths: np.ndarray  # (n_fascicles,) m
    moment_arms: np.ndarray  # (n_fascicles, n_coordinates) m
    net_moments: np.ndarray  # (n_coordinates,) generalised forces the muscles must supply, N m
    points: np.ndarray  # (n_path_points, 3) every fascicle's path points, fascicle by fascicle, m
    rotations: dict[str, np.ndarray]  # body -> 3x3 rotation of its frame in ground
    external: list[tuple[str, np.ndarray]]  # (body, force in ground) of each external load, N
    inertial: dict[str, np.ndarray] | None = None  # body -> -m a of its centre of mass, N


def load_in_ground(load: ExternalLoad, rotation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    force, moment = np.array(load.force_N, float), np.array(load.moment_Nm, float)
    if load.frame == "body":
        return rotation @ force, rotation @ moment
    if load.frame != "ground":
        raise LumbarTwinError(f"load frame must be 'ground' or 'body', not {load.frame!r}")
    return force, moment


class MujocoEngine:
    name = "mujoco"

    def __init__(self, spec: ModelSpec, model: mujoco.MjModel | None = None):
        """`model` (e.g. loaded from a written model.xml) defaults to one built from `spec`."""
        self.spec = spec
        self.model = model if model is not None else build_mujoco(spec)
        self.data = mujoco.MjData(self.model)
        m = self.model
        # qpos/dof address of each spec coordinate; tendon id of each fascicle; site of each point.
        self._qpos = np.array([m.jnt_qposadr[m.joint(c).id] for c in spec.coordinate_names])
        self._dof = np.array([m.jnt_dofadr[m.joint(c).id] for c in spec.coordinate_names])
        self._tendon = np.array([m.tendon(f).id for f in spec.fascicle_names])
        self._sites = np.array([m.site(f"{f.name}_p{k}").id for f in spec.fascicles for k in range(len(f.points))])
        self._bodies = {b.name: m.body(b.name).id for b in spec.bodies}
        self._index = {name: k for k, name in enumerate(spec.coordinate_names)}
        self._dense_j = np.zeros((m.ntendon, m.nv))
        self._arm_rows_cols = np.ix_(self._tendon, self._dof)

    def set_pose(self, pose: Mapping[str, float]) -> None:
        self._set_qpos(pose)
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)
        mujoco.mj_tendon(self.model, self.data)

    def lengths(self, pose: Mapping[str, float]) -> np.ndarray:
        self.set_pose(pose)
        return self.data.ten_length[self._tendon].copy()

    def moment_arms(self, pose: Mapping[str, float]) -> np.ndarray:
        self.set_pose(pose)
        return self._arms()

    def frame(self, pose: Mapping[str, float], loads: Sequence[ExternalLoad] = (),
              velocities: Mapping[str, float] | None = None,
              accelerations: Mapping[str, float] | None = None) -> Frame:
        model, data = self.model, self.data
        self._set_qpos(pose)
        if loads:  # contact points and Jacobians; mj_inverse recomputes the rest anyway
            mujoco.mj_kinematics(model, data)
            mujoco.mj_comPos(model, data)
        data.qvel[:] = 0.0
        data.qacc[:] = 0.0
        for values, target in ((velocities, data.qvel), (accelerations, data.qacc)):
            for name, value in (values or {}).items():
                target[self._dof[self._index[name]]] = value
        external, qfrc = [], np.zeros(model.nv)
        for load in loads:
            contact = self.spec.contact(load.contact)
            bid = self._bodies[contact.body]
            rot = data.xmat[bid].reshape(3, 3)
            point = data.xpos[bid] + rot @ np.array(contact.location_m)
            force, moment = load_in_ground(load, rot)
            mujoco.mj_applyFT(model, data, force, moment, point, bid, qfrc)
            external.append((contact.body, force))
        mujoco.mj_inverse(model, data)
        # qfrc_inverse is what all applied forces together must supply; the muscles supply
        # what the external loads do not.
        net = (data.qfrc_inverse - qfrc)[self._dof]
        inertial = self._inertial() if (velocities or accelerations) else None
        return Frame(
            lengths=data.ten_length[self._tendon].copy(), moment_arms=self._arms(), net_moments=net,
            points=data.site_xpos[self._sites].copy(),
            rotations={b: data.xmat[i].reshape(3, 3).copy() for b, i in self._bodies.items()},
            external=external, inertial=inertial,
        )

    def _set_qpos(self, pose: Mapping[str, float]) -> None:
        self.data.qpos[:] = 0.0
        for name, value in pose.items():
            self.data.qpos[self._qpos[self._index[name]]] = value

    def _arms(self) -> np.ndarray:
        m = self.model
        mujoco.mju_sparse2dense(self._dense_j, self.data.ten_J, m.ten_J_rownnz, m.ten_J_rowadr, m.ten_J_colind)
        return -self._dense_j[self._arm_rows_cols]

    def _inertial(self) -> dict[str, np.ndarray]:
        mujoco.mj_rnePostConstraint(self.model, self.data)
        out, acc = {}, np.zeros(6)
        for name, bid in self._bodies.items():
            mujoco.mj_objectAcceleration(self.model, self.data, mujoco.mjtObj.mjOBJ_BODY, bid, acc, 0)
            # MuJoCo's accelerations carry the gravity offset (like an accelerometer): remove it.
            out[name] = -self.model.body_mass[bid] * (acc[3:] + self.model.opt.gravity)
        return out


class OpenSimEngine:
    name = "opensim"
    #: Step for finite-difference Jacobians of contact points [rad].
    _STEP = 1e-6

    def __init__(self, spec: ModelSpec, model: osim.Model | None = None):
        """`model` (e.g. loaded from a written model.osim) defaults to one built from `spec`."""
        self.spec = spec
        self.model = model if model is not None else build_opensim(spec)
        self.state = self.model.initSystem()
        coords, muscles, bodies = self.model.getCoordinateSet(), self.model.getMuscles(), self.model.getBodySet()
        self._coords = [coords.get(name) for name in spec.coordinate_names]
        self._muscles = [muscles.get(name) for name in spec.fascicle_names]
        self._bodies = {b.name: bodies.get(b.name) for b in spec.bodies}
        self._path_points = [m.getGeometryPath().getPathPointSet().get(k)
                             for m in self._muscles for k in range(m.getGeometryPath().getPathPointSet().getSize())]
        self._u_index = self._mobility_order()
        self.state = self.model.initializeState()
        for muscle in self._muscles:  # inverse dynamics must see no muscle force (NOTES.md)
            muscle.setAppliesForce(self.state, False)

    def set_pose(self, pose: Mapping[str, float]) -> None:
        for coord in self._coords:
            coord.setValue(self.state, float(pose.get(coord.getName(), 0.0)), False)
        self.model.realizePosition(self.state)

    def lengths(self, pose: Mapping[str, float]) -> np.ndarray:
        self.set_pose(pose)
        return np.array([m.getLength(self.state) for m in self._muscles])

    def moment_arms(self, pose: Mapping[str, float]) -> np.ndarray:
        self.set_pose(pose)
        return np.array([[m.computeMomentArm(self.state, c) for c in self._coords] for m in self._muscles])

    def frame(self, pose: Mapping[str, float], loads: Sequence[ExternalLoad] = (),
              velocities: Mapping[str, float] | None = None,
              accelerations: Mapping[str, float] | None = None) -> Frame:
        velocities, accelerations = dict(velocities or {}), dict(accelerations or {})
        arms = self.moment_arms(pose)
        lengths = np.array([m.getLength(self.state) for m in self._muscles])
        udot = osim.Vector(self.state.getNU(), 0.0)
        for k, coord in enumerate(self._coords):
            coord.setSpeedValue(self.state, float(velocities.get(coord.getName(), 0.0)))
            udot.set(int(self._u_index[k]), float(accelerations.get(coord.getName(), 0.0)))
        self.model.realizeVelocity(self.state)
        residual = osim.InverseDynamicsSolver(self.model).solve(self.state, udot)
        net = np.array([residual.get(int(k)) for k in self._u_index])
        rotations = {name: self._rotation(body) for name, body in self._bodies.items()}
        external = []
        for load in loads:
            contact = self.spec.contact(load.contact)
            force, moment = load_in_ground(load, rotations[contact.body])
            net -= self._generalised_force(pose, contact, force, moment)
            external.append((contact.body, force))
        inertial = self._inertial(pose, velocities, accelerations) if (velocities or accelerations) else None
        self.set_pose(pose)
        points = np.array([_vec(p.getLocationInGround(self.state)) for p in self._path_points])
        return Frame(lengths, arms, net, points, rotations, external, inertial)

    # -- helpers ----------------------------------------------------------------------------
    def _rotation(self, body) -> np.ndarray:
        mat = body.getTransformInGround(self.state).R().asMat33()
        return np.array([[mat.get(i, j) for j in range(3)] for i in range(3)])

    def _station(self, contact) -> tuple[np.ndarray, np.ndarray]:
        body = self._bodies[contact.body]
        point = _vec(body.findStationLocationInGround(self.state, osim.Vec3(*contact.location_m)))
        return point, self._rotation(body)

    def _generalised_force(self, pose, contact, force, moment) -> np.ndarray:
        """J^T [force; moment] at the contact, by central differences of OpenSim's kinematics."""
        out = np.zeros(len(self._coords))
        for j, coord in enumerate(self._coords):
            ends = []
            for sign in (1.0, -1.0):
                self.set_pose({**pose, coord.getName(): pose.get(coord.getName(), 0.0) + sign * self._STEP})
                ends.append(self._station(contact))
            (p1, r1), (p0, r0) = ends
            dp = (p1 - p0) / (2 * self._STEP)
            skew = (r1 @ r0.T - r0 @ r1.T) / (4 * self._STEP)  # [omega]x per unit q
            omega = np.array([skew[2, 1], skew[0, 2], skew[1, 0]])
            out[j] = dp @ force + omega @ moment
        self.set_pose(pose)
        return out

    def _inertial(self, pose, velocities, accelerations, step_s: float = 1e-3) -> dict[str, np.ndarray]:
        """-m a of each body's centre of mass, a = d^2/dt^2 of its position along
        q(t) = q + v t + a t^2 / 2 (central differences of OpenSim's kinematics)."""
        names = [c.getName() for c in self._coords]
        positions = []
        for t in (-step_s, 0.0, step_s):
            self.set_pose({n: pose.get(n, 0.0) + velocities.get(n, 0.0) * t + 0.5 * accelerations.get(n, 0.0) * t * t
                           for n in names})
            positions.append({b.name: _vec(self._bodies[b.name].findStationLocationInGround(
                self.state, osim.Vec3(*b.com_m))) for b in self.spec.bodies})
        return {b.name: -b.mass_kg * (positions[2][b.name] - 2 * positions[1][b.name] + positions[0][b.name])
                / step_s**2 for b in self.spec.bodies}

    def _mobility_order(self) -> np.ndarray:
        """Index in the system's mobilities (U) of each spec coordinate."""
        order = []
        for coord in self._coords:
            state = self.model.initializeState()
            state.updU().setTo(0.0)
            coord.setSpeedValue(state, 1.0)
            u = state.getU()
            order.append(next(k for k in range(u.size()) if u.get(k) != 0.0))
        return np.array(order)


def _vec(v) -> np.ndarray:
    return np.array([v.get(0), v.get(1), v.get(2)])

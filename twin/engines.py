"""Narrow adapters over the two engines: the same questions, asked of OpenSim or MuJoCo.

Both take a ModelSpec, build their engine's model from it, and answer in spec order
(fascicles x coordinates) for a pose given as {coordinate name: rad}:
- `lengths(pose)`     -> (n_fascicles,) musculotendon lengths [m]
- `moment_arms(pose)` -> (n_fascicles, n_coordinates) moment arms [m], -dL/dq
- `frame(pose, loads)` -> Frame: all that quasi-static biomechanics needs of one frame
- `contact_jacobian(pose, contact)` -> (n_coordinates, 3): generalised forces per newton of a
  ground-frame force at the contact point (J^T), and the contact body's rotation
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

    def contact_jacobian(self, pose: Mapping[str, float], contact: str) -> tuple[np.ndarray, np.ndarray]:
        c = self.spec.contact(contact)
        self.set_pose(pose)
        bid = self._bodies[c.body]
        rot = self.data.xmat[bid].reshape(3, 3).copy()
        jacp = np.zeros((3, self.model.nv))
        mujoco.mj_jac(self.model, self.data, jacp, None, self.data.xpos[bid] + rot @ np.array(c.location_m), bid)
        return jacp[:, self._dof].T.copy(), rot

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

    def __init__(self, spec: ModelSpec, model: osim.Model | None = None):
        """`model` (e.g. loaded from a written model.osim) defaults to one built from `spec`."""
        self.spec = spec
        self.model = model if model is not None else build_opensim(spec)
        self.state = self.model.initSystem()
        coords, muscles, bodies = self.model.getCoordinateSet(), self.model.getMuscles(), self.model.getBodySet()
        self._coords = [coords.get(name) for name in spec.coordinate_names]
        self._muscles = [muscles.get(name) for name in spec.fascicle_names]
        self._bodies = {b.name: bodies.get(b.name) for b in spec.bodies}
        self._matter = self.model.getMatterSubsystem()
        self._mobod = {name: int(body.getMobilizedBodyIndex()) for name, body in self._bodies.items()}
        self._path_points = [m.getGeometryPath().getPathPointSet().get(k)
                             for m in self._muscles for k in range(m.getGeometryPath().getPathPointSet().getSize())]
        self._point_body = np.array([self._mobod[p.body] for f in spec.fascicles for p in f.points])
        # Fixed path points: their location on the body, as the OpenSim model holds it.
        self._point_local = np.array([osim.PathPoint.safeDownCast(p).get_location().to_numpy()
                                      for p in self._path_points])
        # Path segments (consecutive points of one fascicle) as point index pairs.
        first = np.cumsum([0] + [len(f.points) for f in spec.fascicles])[:-1]
        self._segment_fascicle = np.concatenate([np.full(len(f.points) - 1, i) for i, f in enumerate(spec.fascicles)])
        self._segment_start = np.concatenate([first[i] + np.arange(len(f.points) - 1) for i, f in enumerate(spec.fascicles)])
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
        """OpenSim's own MomentArmSolver, muscle by muscle (slow: the independent check)."""
        self.set_pose(pose)
        return np.array([[m.computeMomentArm(self.state, c) for c in self._coords] for m in self._muscles])

    def contact_jacobian(self, pose: Mapping[str, float], contact: str) -> tuple[np.ndarray, np.ndarray]:
        c = self.spec.contact(contact)
        self.set_pose(pose)
        point, rotation = self._station(c)
        jac_v, _ = self._station_jacobians(point[None], np.array([self._mobod[c.body]]), self._system_jacobian())
        return jac_v[0].T, rotation

    def frame(self, pose: Mapping[str, float], loads: Sequence[ExternalLoad] = (),
              velocities: Mapping[str, float] | None = None,
              accelerations: Mapping[str, float] | None = None) -> Frame:
        velocities, accelerations = dict(velocities or {}), dict(accelerations or {})
        self.set_pose(pose)
        lengths = np.array([m.getLength(self.state) for m in self._muscles])
        system = self._system_jacobian()
        # Path points in ground from their bodies' transforms (one call a body, not a point).
        points = np.einsum("pij,pj->pi", system["rotation"][self._point_body], self._point_local) \
            + system["origin"][self._point_body]
        arms = self._path_moment_arms(points, system)
        rotations = {name: system["rotation"][self._mobod[name]] for name in self._bodies}
        external, applied = [], np.zeros(len(self._coords))
        for load in loads:
            contact = self.spec.contact(load.contact)
            point, rotation = self._station(contact)
            force, moment = load_in_ground(load, rotation)
            jac_v, jac_w = self._station_jacobians(point[None], np.array([self._mobod[contact.body]]), system)
            applied += force @ jac_v[0] + moment @ jac_w[0]
            external.append((contact.body, force))
        udot = osim.Vector(self.state.getNU(), 0.0)
        for k, coord in enumerate(self._coords):
            coord.setSpeedValue(self.state, float(velocities.get(coord.getName(), 0.0)))
            udot.set(int(self._u_index[k]), float(accelerations.get(coord.getName(), 0.0)))
        self.model.realizeVelocity(self.state)
        residual = osim.InverseDynamicsSolver(self.model).solve(self.state, udot)
        net = np.array([residual.get(int(k)) for k in self._u_index]) - applied
        inertial = self._inertial(pose, velocities, accelerations) if (velocities or accelerations) else None
        return Frame(lengths, arms, net, points, rotations, external, inertial)

    # -- helpers ----------------------------------------------------------------------------
    def _system_jacobian(self) -> dict[str, np.ndarray]:
        """Simbody's system Jacobian at the current pose: each mobilised body's angular and
        origin velocity per generalised speed, in ground, columns in spec coordinate order."""
        matrix = osim.Matrix()
        self._matter.calcSystemJacobian(self.state, matrix)
        jac = matrix.to_numpy().reshape(-1, 6, self.state.getNU())[:, :, self._u_index]
        origins, rotations = np.zeros((jac.shape[0], 3)), np.tile(np.eye(3), (jac.shape[0], 1, 1))
        for name, body in self._bodies.items():
            origins[self._mobod[name]] = _vec(body.getPositionInGround(self.state))
            rotations[self._mobod[name]] = self._rotation(body)
        return {"angular": jac[:, :3], "linear": jac[:, 3:], "origin": origins, "rotation": rotations}

    def _station_jacobians(self, points: np.ndarray, mobods: np.ndarray, system: dict[str, np.ndarray]):
        """Linear (n, 3, n_coords) and angular (n, 3, n_coords) Jacobians of ground points fixed
        to the given bodies: v = v_origin + omega x r."""
        r = points - system["origin"][mobods]
        angular = system["angular"][mobods]
        return system["linear"][mobods] - np.cross(r[:, :, None], angular, axisa=1, axisb=1, axisc=1), angular

    def _path_moment_arms(self, points: np.ndarray, system: dict[str, np.ndarray]) -> np.ndarray:
        """-dL/dq of straight-line paths from the path points' station Jacobians (exact, and
        equal to OpenSim's MomentArmSolver to round-off; tests hold them together)."""
        jac, _ = self._station_jacobians(points, self._point_body, system)
        start, end = self._segment_start, self._segment_start + 1
        unit = points[end] - points[start]
        unit /= np.linalg.norm(unit, axis=1)[:, None]
        per_segment = np.einsum("sk,skj->sj", unit, jac[end] - jac[start])
        arms = np.zeros((len(self._muscles), per_segment.shape[1]))
        np.add.at(arms, self._segment_fascicle, -per_segment)
        return arms

    def _rotation(self, body) -> np.ndarray:
        mat = body.getTransformInGround(self.state).R().asMat33()
        return np.array([[mat.get(i, j) for j in range(3)] for i in range(3)])

    def _station(self, contact) -> tuple[np.ndarray, np.ndarray]:
        body = self._bodies[contact.body]
        point = _vec(body.findStationLocationInGround(self.state, osim.Vec3(*contact.location_m)))
        return point, self._rotation(body)

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
        self.set_pose(pose)
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
    return v.to_numpy()

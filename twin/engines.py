"""Narrow adapters over the two engines: the same questions, asked of OpenSim or MuJoCo.

Both take a ModelSpec, build their engine's model from it, and answer in spec order
(fascicles x coordinates) for a pose given as {coordinate name: rad}:
- `lengths(pose)`     -> (n_fascicles,) musculotendon lengths [m]
- `moment_arms(pose)` -> (n_fascicles, n_coordinates) moment arms [m], -dL/dq
"""
from __future__ import annotations

from collections.abc import Mapping

import mujoco
import numpy as np
import opensim as osim

from twin.mujoco_model import build_mujoco
from twin.opensim_model import build_opensim
from twin.spec import ModelSpec


class MujocoEngine:
    name = "mujoco"

    def __init__(self, spec: ModelSpec, model: mujoco.MjModel | None = None):
        """`model` (e.g. loaded from a written model.xml) defaults to one built from `spec`."""
        self.spec = spec
        self.model = model if model is not None else build_mujoco(spec)
        self.data = mujoco.MjData(self.model)
        # qpos address of each spec coordinate; tendon id of each spec fascicle.
        self._qpos = np.array([self.model.jnt_qposadr[self.model.joint(c).id] for c in spec.coordinate_names])
        self._dof = np.array([self.model.jnt_dofadr[self.model.joint(c).id] for c in spec.coordinate_names])
        self._tendon = np.array([self.model.tendon(f).id for f in spec.fascicle_names])

    def set_pose(self, pose: Mapping[str, float]) -> None:
        self.data.qpos[:] = 0.0
        names = self.spec.coordinate_names
        for name, value in pose.items():
            self.data.qpos[self._qpos[names.index(name)]] = value
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)
        mujoco.mj_tendon(self.model, self.data)

    def lengths(self, pose: Mapping[str, float]) -> np.ndarray:
        self.set_pose(pose)
        return self.data.ten_length[self._tendon].copy()

    def moment_arms(self, pose: Mapping[str, float]) -> np.ndarray:
        self.set_pose(pose)
        m = self.model
        dense = np.zeros((m.ntendon, m.nv))
        mujoco.mju_sparse2dense(dense, self.data.ten_J, m.ten_J_rownnz, m.ten_J_rowadr, m.ten_J_colind)
        return -dense[np.ix_(self._tendon, self._dof)]


class OpenSimEngine:
    name = "opensim"

    def __init__(self, spec: ModelSpec, model: osim.Model | None = None):
        """`model` (e.g. loaded from a written model.osim) defaults to one built from `spec`."""
        self.spec = spec
        self.model = model if model is not None else build_opensim(spec)
        self.state = self.model.initSystem()
        coords = self.model.getCoordinateSet()
        muscles = self.model.getMuscles()
        self._coords = [coords.get(name) for name in spec.coordinate_names]
        self._muscles = [muscles.get(name) for name in spec.fascicle_names]

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

"""Forward kinematics of a ModelSpec in plain numpy, independent of both engines.

Used to resolve the template (fascicle lengths in neutral standing), to draw the twin, and as
a third opinion in tests. Poses are dicts {coordinate name: angle in rad}; missing ones are 0.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.spatial.transform import Rotation

from twin.spec import Fascicle, Joint, ModelSpec


def axis_angle_matrix(axis, angle: float) -> np.ndarray:
    return Rotation.from_rotvec(np.asarray(axis, float) * angle).as_matrix()


def orientation_matrix(orientation_rad) -> np.ndarray:
    """Body-fixed X-Y-Z Euler angles (OpenSim's PhysicalOffsetFrame convention)."""
    return Rotation.from_euler("XYZ", orientation_rad).as_matrix()


def joint_transform(joint: Joint, pose: Mapping[str, float]) -> np.ndarray:
    """4x4 pose of the child frame in the parent frame."""
    rot = orientation_matrix(joint.orientation_rad)
    for coord in joint.coordinates:  # successive rotations about axes that move with the child
        rot = rot @ axis_angle_matrix(coord.axis, pose.get(coord.name, 0.0))
    out = np.eye(4)
    out[:3, :3] = rot
    out[:3, 3] = joint.location_m
    return out


def body_transforms(spec: ModelSpec, pose: Mapping[str, float] | None = None) -> dict[str, np.ndarray]:
    """World (ground = pelvis) 4x4 transform of every body."""
    pose = pose or {}
    world = {spec.bodies[0].name: np.eye(4)}
    pending = list(spec.joints)
    while pending:
        progressed = False
        for joint in list(pending):
            if joint.parent in world:
                world[joint.child] = world[joint.parent] @ joint_transform(joint, pose)
                pending.remove(joint)
                progressed = True
        if not progressed:
            raise ValueError(f"joints {[j.name for j in pending]} are not connected to {spec.bodies[0].name}")
    return world


def path_points_world(fascicle: Fascicle, transforms: Mapping[str, np.ndarray]) -> np.ndarray:
    """(n, 3) world positions of a fascicle's path points."""
    return np.array([transforms[p.body][:3, :3] @ p.location_m + transforms[p.body][:3, 3] for p in fascicle.points])


def fascicle_length(fascicle: Fascicle, transforms: Mapping[str, np.ndarray]) -> float:
    pts = path_points_world(fascicle, transforms)
    return float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum())


def fascicle_lengths(spec: ModelSpec, pose: Mapping[str, float] | None = None) -> np.ndarray:
    transforms = body_transforms(spec, pose)
    return np.array([fascicle_length(f, transforms) for f in spec.fascicles])


def joint_chain(spec: ModelSpec, body_a: str, body_b: str) -> list[Joint]:
    """Joints on the tree path between two bodies."""
    parent_joint = {j.child: j for j in spec.joints}

    def ancestry(body: str) -> list[Joint]:
        chain = []
        while body in parent_joint:
            chain.append(parent_joint[body])
            body = parent_joint[body].parent
        return chain

    up_a, up_b = ancestry(body_a), ancestry(body_b)
    shared = {j.name for j in up_a} & {j.name for j in up_b}
    return [j for j in up_a + up_b if j.name not in shared]

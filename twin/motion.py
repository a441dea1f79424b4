"""The range of motion: the poses over which every muscle of a twin must work.

Each coordinate's range (spec) is its level's lumbar-rhythm share of the global range of motion
(template). The poses are the neutral pose, the 27 global postures that put every level of each
kind (flexion, lateral, rotation) at its lower end, zero or upper end, and seeded random poses
in the box of coordinate ranges (levels moving independently). Musculotendon lengths are near
monotonic in each angle and a fascicle's moment arms about its crossed levels share their sign,
so the global postures hold the extremes; the random poses cover mixed ones. The same poses set
MuJoCo's `lengthrange` and are checked in both engines after a build.
"""
from __future__ import annotations

import itertools

import numpy as np

from twin.kinematics import body_transforms
from twin.spec import COORDINATE_KINDS, ModelSpec

#: Random poses in the box of coordinate ranges, besides the neutral and 27 global postures.
RANDOM_POSES = 200
SEED = 0


def range_of_motion_poses(spec: ModelSpec, random_poses: int = RANDOM_POSES, seed: int = SEED) -> np.ndarray:
    """(n_poses, n_coordinates) angles [rad] in spec coordinate order; row 0 is neutral."""
    coords = spec.coordinates
    lo = np.array([c.range_rad[0] for c in coords])
    hi = np.array([c.range_rad[1] for c in coords])
    kind = np.array([COORDINATE_KINDS.index(c.kind) for c in coords])
    rows = [np.zeros(len(coords))]
    for ends in itertools.product((0, 1, 2), repeat=len(COORDINATE_KINDS)):
        choice = np.array(ends)[kind]
        rows.append(np.choose(choice, [lo, np.zeros(len(coords)), hi]))
    rng = np.random.default_rng(seed)
    rows.extend(rng.uniform(lo, hi) for _ in range(random_poses))
    return np.array(rows)


def path_lengths(spec: ModelSpec, poses: np.ndarray) -> np.ndarray:
    """(n_poses, n_fascicles) musculotendon lengths [m] by the toolkit's own kinematics."""
    bodies = [p.body for f in spec.fascicles for p in f.points]
    local = np.array([p.location_m for f in spec.fascicles for p in f.points])
    counts = np.array([len(f.points) for f in spec.fascicles])
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    # segment k joins point k and k+1 of one fascicle; drop the joins between fascicles
    segment = np.ones(len(bodies) - 1, bool)
    segment[starts[1:] - 1] = False
    owner = np.repeat(np.arange(len(counts)), counts)[:-1][segment]
    names = spec.coordinate_names
    out = np.empty((len(poses), len(counts)))
    for i, q in enumerate(poses):
        world = body_transforms(spec, dict(zip(names, q)))
        rot = np.array([world[b][:3, :3] for b in bodies])
        pos = np.einsum("nij,nj->ni", rot, local) + np.array([world[b][:3, 3] for b in bodies])
        seg = np.linalg.norm(np.diff(pos, axis=0), axis=1)[segment]
        out[i] = np.bincount(owner, weights=seg, minlength=len(counts))
    return out

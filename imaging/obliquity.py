"""Where and how to read a muscle's cross-section when the slices are oblique to the spine.

The healthy norms and the phantoms' truth are cross-sections in the disc's plane
perpendicular to the spine. A slab tilted by theta to the spine (slices prescribed parallel to
one disc are routinely 10-30 degrees off true axial in the lower lumbar spine) cuts each muscle
in a section about 1 / cos(theta) too large, and, away from the spine, at the wrong height: the
slice through the disc centre meets an erector spinae 80 mm behind it 80 tan(theta) mm (29 mm at
20 degrees) higher or lower, where the muscle has another size.

So, per muscle and disc (`muscle_crossings`):
1. The spine's axis d: the line through the vertebral bodies' centroids (principal direction);
   the disc plane passes through the point of that line on the disc's slice position (the
   level's own position, imaging.levels) with normal d.
2. The muscle's axis a: the straight line through the centroids (world mm) of its sections on
   the slices within `AXIS_WINDOW_MM` of where it crosses the disc plane (fitted by least
   squares of in-plane position against position along the slice normal n, twice: the first
   fit around the disc's slice finds the crossing, the second around the crossing).
3. The section is read on the slice where a meets the disc plane (fractional, interpolated as
   at the disc), and scaled by |a.n| / |a.d|: a prism along a cut by a plane of normal n has
   area A / |a.n|, by the disc plane A / |a.d|. The fat fraction is read over the same slab
   around that slice. On slices perpendicular to the spine (n = d) nothing changes.

Only where the slices are `OBLIQUE_MIN_DEG` or more off the spine's axis. Where a muscle has
fewer than `MIN_SECTIONS` sections near the disc, or its axis is unsure (the
fitted tilt's standard error above `MAX_TILT_SE_RAD`), or its crossing lies outside the slab, the
section is read at the disc's slice unscaled and a warning says so with the inflation size
1 / cos(theta) of the spine's tilt.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from imaging.labels import MUSCLE_LABELS
from imaging.levels import Levels

#: Half-width of the window a muscle's axis is fitted over (mm along the slice normal): within
#: one motion segment (lumbar disc 9-12 mm plus half a 25-27 mm vertebral body, Panjabi et
#: al. 1992), where the lordotic curve bends a muscle little.
AXIS_WINDOW_MM = 20.0
MIN_SECTIONS = 3
#: A fitted tilt with a larger standard error (rad, about 6 degrees) is not used.
MAX_TILT_SE_RAD = 0.1
#: Below this angle between the slice normal and the spine's axis the sections are read on the
#: disc's slice as cut: the lumbar spine's own axis turns more than this from segment to segment
#: (segmental lordosis from a few degrees at L1-L2 to over 20 at L4-L5 and L5-S1, Bernhardt &
#: Bridwell 1989, Spine 14:717), so no one plane perpendicular to it is better defined than the slices.
#: A plain axial stack (the real Dixon scan's: 6 degrees to the L2-L5 bodies' line) is read as
#: before; a slab tilted to the spine as a whole is corrected.
OBLIQUE_MIN_DEG = 10.0
#: Beyond this the stack is not axial to the lumbar spine at all (lumbar lordosis L1-S1 is about
#: 40-60 degrees in all, Bernhardt & Bridwell 1989): nothing is corrected.
MAX_SPINE_TILT_DEG = 45.0
#: A row whose axis cannot be found is named when the spine's tilt inflates it by more than this.
REPORT_SHARE = 0.03


@dataclass(frozen=True)
class Crossing:
    """Where to read one muscle at one disc."""

    slice: float  # fractional slice index where the muscle's axis meets the disc plane
    factor: float  # section area on the slices x factor = area in the disc plane
    tilt_deg: float  # angle between the muscle's axis and the slice normal


def muscle_crossings(labels: np.ndarray, affine: np.ndarray, levels: Levels, vertebrae: np.ndarray,
                     convention: dict[str, int]) -> tuple[dict[tuple[int, str], Crossing], list[str]]:
    """Crossing per (label value, level) for every muscle present near every level found.

    labels, vertebrae: (X, Y, Z) canonical maps; affine: voxel -> world (mm); convention:
    vertebra name -> value. Returns the crossings and warnings (module docstring)."""
    normal = np.cross(affine[:3, 0], affine[:3, 1])
    normal /= np.linalg.norm(normal)
    if normal @ affine[:3, 2] < 0:
        normal = -normal
    step = float(affine[:3, 2] @ normal)  # mm along the normal per slice
    window = max(1, int(np.floor(AXIS_WINDOW_MM / step)))
    to_voxel = np.linalg.inv(affine)
    spine = _spine_axis(vertebrae, convention, affine, normal)
    if spine is None:
        return {}, ["fewer than two vertebral bodies: the spine's axis is unknown, CSA as cut by the slices"]
    origin, axis = spine
    spine_tilt = float(np.degrees(np.arccos(np.clip(axis @ normal, -1, 1))))
    if spine_tilt < OBLIQUE_MIN_DEG:
        return {}, []
    if spine_tilt > MAX_SPINE_TILT_DEG:
        return {}, [f"the vertebral bodies' line is {spine_tilt:.0f} degrees off the slice normal: not an axial "
                    "stack of the lumbar spine (or a vertebra map on another image); CSA as cut by the slices"]
    inflation = 1 / max(float(axis @ normal), 1e-6)
    centroids = _centroids(labels, affine)
    crossings, warnings = {}, []
    for level in levels.found:
        # the disc plane: normal `axis`, through the spine line's point on the disc's slice position
        t = (levels.disc_slice[level] - (to_voxel[2, :3] @ origin + to_voxel[2, 3])) / (to_voxel[2, :3] @ axis)
        centre = origin + t * axis
        for (muscle, side), value in MUSCLE_LABELS.items():
            if not any((value, k) in centroids for k in _window(levels.disc_slice[level], window)):
                continue
            crossing = _crossing(centroids, value, levels.disc_slice[level], window, centre, axis, normal,
                                 to_voxel, labels.shape[2])
            key = f"{muscle} {side} {level}"
            if crossing is None:
                if inflation - 1 > REPORT_SHARE:
                    warnings.append(f"{key}: the muscle's axis could not be found near the disc; its CSA is as cut by "
                                    f"slices {spine_tilt:.0f} degrees off the spine (about x {inflation:.2f} too "
                                    "large)")
                continue
            crossings[(value, level)] = crossing
    if crossings:
        factors = [c.factor for c in crossings.values()]
        shifts = [abs(c.slice - levels.disc_slice[lv]) for (_, lv), c in crossings.items()]
        warnings.insert(0, f"slices {spine_tilt:.0f} degrees off the spine's axis (about x {inflation:.2f} too large "
                           "as cut): each muscle's CSA read in the disc's plane perpendicular to the spine, where the "
                           f"muscle's axis meets it (up to {max(shifts):.1f} slices from the disc's slice, areas "
                           f"scaled x {min(factors):.2f}-{max(factors):.2f}; tilts in muscle_axis_tilt_deg)")
    return crossings, warnings


def _crossing(centroids, value, disc_slice, window, centre, axis, normal, to_voxel, nz) -> Crossing | None:
    guess = disc_slice
    line = None
    for _ in range(2):
        points = [centroids[(value, k)] for k in _window(guess, window) if (value, k) in centroids]
        if len(points) < MIN_SECTIONS:
            return None
        line = _fit(np.array(points), normal)
        if line is None:
            return None
        point, direction = line
        denominator = direction @ axis
        if abs(denominator) < 1e-6:
            return None
        hit = point + ((centre - point) @ axis / denominator) * direction
        guess = float(to_voxel[2, :3] @ hit + to_voxel[2, 3])
        if not 0 <= guess <= nz - 1:
            return None
    a = direction / np.linalg.norm(direction)
    factor = abs(float(a @ normal)) / abs(float(a @ axis))
    return Crossing(guess, factor, float(np.degrees(np.arccos(min(1.0, abs(float(a @ normal)))))))


def _window(position: float, window: int) -> range:
    return range(int(np.ceil(position - window)), int(np.floor(position + window)) + 1)


def _fit(points: np.ndarray, normal: np.ndarray):
    """(a point on it, direction with unit component along `normal`) of the least-squares line
    through `points` (in-plane position against position along the normal), or None when the
    tilt's standard error exceeds MAX_TILT_SE_RAD."""
    along = points @ normal
    sideways = points - np.outer(along, normal)
    centred = along - along.mean()
    sxx = float(np.sum(centred**2))
    if sxx <= 0:
        return None
    slope = centred @ (sideways - sideways.mean(axis=0)) / sxx  # in-plane shift per mm along the normal
    residual = sideways - sideways.mean(axis=0) - np.outer(centred, slope)
    se = np.sqrt(np.sum(residual**2) / max(len(along) - 2, 1) / sxx)
    tan = float(np.linalg.norm(slope))
    if se / (1 + tan**2) > MAX_TILT_SE_RAD:  # d(atan)/d(tan) = 1 / (1 + tan^2)
        return None
    return points.mean(axis=0), normal + slope


def _spine_axis(vertebrae, convention, affine, normal):
    """(a point, unit direction along +normal) of the line through the vertebral bodies'
    centroids, or None with fewer than two bodies."""
    values = [v for v in convention.values() if np.any(vertebrae == v)]
    if len(values) < 2:
        return None
    voxels = np.array(ndimage.center_of_mass(np.ones(vertebrae.shape), vertebrae, values))
    points = voxels @ affine[:3, :3].T + affine[:3, 3]
    centre = points.mean(axis=0)
    direction = np.linalg.svd(points - centre)[2][0]
    return centre, direction if direction @ normal >= 0 else -direction


def _centroids(labels: np.ndarray, affine: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """(label value, slice) -> centroid of that section in world mm."""
    out = {}
    for value in MUSCLE_LABELS.values():
        for k in np.flatnonzero(np.any(labels == value, axis=(0, 1))):
            i, j = np.nonzero(labels[:, :, k] == value)
            out[(value, int(k))] = affine[:3, :3] @ np.array([i.mean(), j.mean(), k]) + affine[:3, 3]
    return out

"""Where and how to read a muscle's cross-section when the slices are oblique.

The healthy norms and the phantoms' truth are cross-sections in the disc's axial plane (normal
to the patient's long axis). A slab tilted by theta (slices prescribed parallel to one disc are
routinely 10-30 degrees off axial in the lower lumbar spine) cuts each muscle in a section about
1 / cos(theta) too large, and, away from the spine, at the wrong height: the slice through the
disc centre meets an erector spinae 80 mm behind it 80 tan(theta) mm (29 mm at 20 degrees)
higher or lower, where the muscle has another size. Read this way, the same patient gives the
same numbers whatever angle the slab was prescribed at.

So, per muscle and disc (`muscle_crossings`), where the slice normal n is `OBLIQUE_MIN_DEG` or
more off the patient's long axis z (the header's superior axis; the image data are really
tilted, and the header says so):
1. The disc's plane: normal z, through the point of the spine's line (the principal direction
   through the vertebral bodies' centroids) at the disc's slice position (imaging.levels).
2. The muscle's axis a: the straight line through the centroids (world mm) of its sections on
   the slices within `AXIS_WINDOW_MM` of where it crosses the disc plane (fitted by least
   squares of in-plane position against position along n, twice: the first fit around the
   disc's slice finds the crossing, the second around the crossing).
3. The section is read on the slice where a meets the disc plane (fractional, interpolated as
   at the disc), and scaled by |a.n| / |a.z|: a prism along a cut by a plane of normal n has
   area A / |a.n|, by the disc plane A / |a.z|. The fat fraction is read over the same slab
   around that slice.

Where a muscle has fewer than `MIN_SECTIONS` sections near the disc, or its axis is unsure (the
fitted tilt's standard error above `MAX_TILT_SE_RAD`), or its crossing lies outside the slab,
the section is read at the disc's slice unscaled and a warning gives the inflation
1 / cos(theta). A lordotic spine on axial slices is read as cut, in the axial plane, like the
norms.
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
#: Below this angle between the slice normal and the patient's long axis the slices are read as
#: cut: the inflation is under 1.5 %, within the CSA's repeatability (manual CSA inter-rater ICC
#: 0.82-0.9+, NOTES), and a patient lies on the table only to within a few degrees of the
#: scanner's axis (the phantom places its patient up to 6 degrees off about each axis), so no
#: plane is better defined than the slices'.
OBLIQUE_MIN_DEG = 10.0
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
    superior = np.array([0.0, 0.0, 1.0])  # world (RAS) z: the patient's long axis, from the header
    tilt = float(np.degrees(np.arccos(min(1.0, abs(float(normal @ superior))))))
    if tilt < OBLIQUE_MIN_DEG:
        return {}, []
    inflation = 1 / float(np.cos(np.radians(tilt)))
    spine = _spine_axis(vertebrae, convention, affine, normal)
    if spine is None:
        return {}, [f"slices {tilt:.0f} degrees off axial and fewer than two vertebral bodies to place the discs: "
                    f"CSA as cut by the slices (about x {inflation:.2f} too large)"]
    origin, spine_axis = spine
    centroids = _centroids(labels, affine)
    crossings, warnings = {}, []
    for level in levels.found:
        # the disc's axial plane: through the spine line's point on the disc's slice position
        t = (levels.disc_slice[level] - (to_voxel[2, :3] @ origin + to_voxel[2, 3])) / (to_voxel[2, :3] @ spine_axis)
        centre = origin + t * spine_axis
        for (muscle, side), value in MUSCLE_LABELS.items():
            if not any((value, k) in centroids for k in _window(levels.disc_slice[level], window)):
                continue
            crossing = _crossing(centroids, value, levels.disc_slice[level], window, centre, superior, normal,
                                 to_voxel, labels.shape[2])
            key = f"{muscle} {side} {level}"
            if crossing is None:
                if inflation - 1 > REPORT_SHARE:
                    warnings.append(f"{key}: the muscle's axis could not be found near the disc; its CSA is as cut by "
                                    f"slices {tilt:.0f} degrees off axial (about x {inflation:.2f} too large)")
                continue
            crossings[(value, level)] = crossing
    if crossings:
        factors = [c.factor for c in crossings.values()]
        shifts = [abs(c.slice - levels.disc_slice[lv]) for (_, lv), c in crossings.items()]
        warnings.insert(0, f"slices {tilt:.0f} degrees off axial (about x {inflation:.2f} too large as cut): each "
                           "muscle's CSA read in the disc's axial plane (perpendicular to the patient's long axis), where the "
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

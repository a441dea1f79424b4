"""Cross-sectional area perpendicular to each muscle's own axis.

A slice that meets a muscle at an angle theta between the muscle's axis and the slice normal
cuts a section 1 / cos(theta) larger than the muscle's cross-section (a slab tilted 20 degrees
to the spine: 6 % larger; tilted slabs are routine, e.g. slices angled to one disc). Each
muscle's axis near a disc is the straight line through the centroids (world mm) of its
sections on the slices within `AXIS_WINDOW_MM` of the disc plane, fitted by least squares of
their in-plane position against their position along the slice normal; the row's CSA and lean
CSA are multiplied by cos(theta). The fat fraction is a ratio within the section and does not
change.

Where fewer than `MIN_SECTIONS` sections lie in the window, or the tilt's standard error
exceeds `MAX_TILT_SE_RAD` (a section that jumps: a muscle just beginning or a segmentation
fault), the CSA is left as measured and a warning says so.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from imaging.labels import MUSCLE_LABELS
from imaging.levels import Levels
from imaging.morphometry import Morphometry

#: Half-width of the window the axis is fitted over (mm along the slice normal): within one
#: motion segment (lumbar disc 9-12 mm plus half a 25-27 mm vertebral body, Panjabi et al.
#: 1992), where the lordotic curve bends a muscle little.
AXIS_WINDOW_MM = 20.0
MIN_SECTIONS = 3
#: Larger standard error of the fitted tilt (rad, about 6 degrees) leaves the CSA as measured.
MAX_TILT_SE_RAD = 0.1
#: Tilts whose correction exceeds this share are named in the warnings.
REPORT_SHARE = 0.03


def perpendicular_csa(morphometry: Morphometry, labels: np.ndarray, affine: np.ndarray,
                      levels: Levels) -> tuple[Morphometry, dict[str, float], list[str]]:
    """Rows with CSA and lean CSA perpendicular to each muscle's axis.

    labels: (X, Y, Z) canonical label map; affine: its voxel -> world (mm) matrix.
    Returns (morphometry, {"muscle side level": tilt in degrees} for every corrected row,
    warnings)."""
    normal = np.cross(affine[:3, 0], affine[:3, 1])
    normal /= np.linalg.norm(normal)
    step = float(affine[:3, 2] @ normal)  # mm along the normal per slice
    window = max(1, int(np.floor(AXIS_WINDOW_MM / abs(step))))
    centroids = _centroids(labels, affine)
    rows, tilts, warnings = [], {}, []
    for row in morphometry.muscles:
        position = levels.disc_slice.get(row.level)
        value = MUSCLE_LABELS[(row.muscle, row.side)]
        key = f"{row.muscle} {row.side} {row.level}"
        if position is None or row.csa_mm2 <= 0:
            rows.append(row)
            continue
        near = [k for k in range(int(np.ceil(position - window)), int(np.floor(position + window)) + 1)
                if (value, k) in centroids]
        tilt = _tilt([centroids[(value, k)] for k in near], normal) if len(near) >= MIN_SECTIONS else None
        if tilt is None:
            warnings.append(f"{key}: too few or irregular sections within {AXIS_WINDOW_MM:g} mm of the disc to find "
                            "the muscle's axis; CSA as cut by the slices")
            rows.append(row)
            continue
        factor = float(np.cos(tilt))
        tilts[key] = round(float(np.degrees(tilt)), 1)
        if 1 / factor - 1 > REPORT_SHARE:
            warnings.append(f"{key}: the slices cut the muscle {np.degrees(tilt):.0f} degrees off its axis; CSA "
                            f"reported perpendicular to the axis ({row.csa_mm2:g} mm^2 as cut, x {factor:.3f})")
        csa = round(row.csa_mm2 * factor, 1)
        rows.append(replace(row, csa_mm2=csa, lean_csa_mm2=round(csa * (1 - row.fat_fraction), 1)))
    return replace(morphometry, muscles=tuple(rows)), tilts, warnings


def _centroids(labels: np.ndarray, affine: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """(label value, slice) -> centroid of that section in world mm."""
    out = {}
    for value in MUSCLE_LABELS.values():
        for k in np.flatnonzero(np.any(labels == value, axis=(0, 1))):
            i, j = np.nonzero(labels[:, :, k] == value)
            out[(value, int(k))] = affine[:3, :3] @ np.array([i.mean(), j.mean(), k]) + affine[:3, 3]
    return out


def _tilt(points: list[np.ndarray], normal: np.ndarray) -> float | None:
    """Angle (rad) between the least-squares line through `points` and `normal`, or None when
    its standard error exceeds MAX_TILT_SE_RAD."""
    points = np.array(points)
    along = points @ normal
    sideways = points - np.outer(along, normal)
    design = np.column_stack([along - along.mean(), np.ones(len(along))])
    coef, _, _, _ = np.linalg.lstsq(design, sideways, rcond=None)
    slope = coef[0]  # in-plane shift per mm along the normal (3-vector, perpendicular to normal)
    residual = sideways - design @ coef
    dof = max(len(along) - 2, 1)
    se = np.sqrt(np.sum(residual**2) / dof / max(np.sum(design[:, 0] ** 2), 1e-12))
    tan = float(np.linalg.norm(slope))
    if se / (1 + tan**2) > MAX_TILT_SE_RAD:  # d(atan)/d(tan) = 1 / (1 + tan^2)
        return None
    return float(np.arctan(tan))

"""The patient's body on each axial slice, and how deep a voxel lies inside it."""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def body_outline(total: np.ndarray) -> np.ndarray:
    """Per slice, the largest connected region brighter than a fifth of that slice's 99th
    percentile (coil sensitivity falls off towards a slab's ends, so one threshold for the
    volume loses its end slices), closed over small gaps in the skin line and filled.

    total: (nx, ny, nz) water + fat (or any signal where tissue is bright and air dark).
    Returns a bool array of the same shape.
    """
    out = np.zeros(total.shape, bool)
    floor = 0.05 * np.percentile(total, 99)  # a slice of air only stays empty
    for k in range(total.shape[2]):
        threshold = max(0.2 * np.percentile(total[:, :, k], 99), floor)
        mask = ndimage.binary_closing(total[:, :, k] > threshold, iterations=2)
        filled = ndimage.binary_fill_holes(mask)
        lab, n = ndimage.label(filled)
        if n:
            sizes = ndimage.sum(filled, lab, range(1, n + 1))
            out[:, :, k] = lab == (1 + int(np.argmax(sizes)))
    return out


def depth_mm(body: np.ndarray, spacing_mm) -> np.ndarray:
    """In-plane distance (mm) of every voxel inside the body from the body's outline."""
    sx, sy = spacing_mm[:2]
    return np.stack([ndimage.distance_transform_edt(body[:, :, k], sampling=(sx, sy))
                     for k in range(body.shape[2])], -1)


def disk_footprint(radius_mm: float, sx: float, sy: float) -> np.ndarray:
    """In-plane disk of the given radius (mm) on a grid of sx x sy mm voxels, for morphology."""
    rx, ry = max(1, int(round(radius_mm / sx))), max(1, int(round(radius_mm / sy)))
    yy, xx = np.ogrid[-rx:rx + 1, -ry:ry + 1]
    return (yy / rx) ** 2 + (xx / ry) ** 2 <= 1

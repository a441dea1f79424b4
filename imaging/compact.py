"""A compact section and what hangs off it.

A muscle's section is compact and roughly convex. Where a watershed lets it into a structure
that touches it with no fat plane between (a vessel, the diaphragm's crus, an organ), the
label gains a band, a sheet or a second round part joined through a neck. An opening by a
disk of a share of the section's own thickness keeps the compact parts and cuts the necks
(Serra, Image Analysis and Mathematical Morphology, 1982, ch. 2); what it took off is then
either rim and corners, close to what it kept, or appendages that reach further out.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def opening(mask: np.ndarray, spacing_mm: tuple[float, float], radius_mm: float) -> np.ndarray:
    """mask's morphological opening by a disk of radius_mm (the union of all such disks
    inside it; outside the array counts as background, as in scipy's binary_opening), done
    with two exact distance maps. (nx, ny) bool -> (nx, ny) bool."""
    padded = np.pad(mask, 1)
    inner = ndimage.distance_transform_edt(padded, sampling=spacing_mm) > radius_mm
    if not inner.any():
        return np.zeros(mask.shape, bool)
    return (padded & (ndimage.distance_transform_edt(~inner, sampling=spacing_mm) <= radius_mm))[1:-1, 1:-1]


def appendages(mask: np.ndarray, core: np.ndarray, spacing_mm: tuple[float, float], reach_mm: float) -> np.ndarray:
    """The connected parts of mask outside core that reach further than reach_mm from it
    (all of mask outside core when core is empty). Rim and corners that a disk opening of
    radius r takes off a shape lie within about 0.42 r of what it kept (a square's corner:
    r (sqrt 2 - 1)); bands and sheets attached to it reach further. (nx, ny) bool in, out."""
    rest = mask & ~core
    if not core.any():
        return rest
    parts, n = ndimage.label(rest)
    if n == 0:
        return rest
    far = ndimage.distance_transform_edt(~core, sampling=spacing_mm)
    reach = np.asarray(ndimage.maximum(far, parts, range(1, n + 1)))
    return np.isin(parts, 1 + np.nonzero(reach > reach_mm)[0])

"""Partial volume at a muscle's border, from the two Dixon channels.

A voxel on the border holds some muscle, some of the fat around it and some signal void
(cortical bone, fascia, air). Its water and fat signals are unmixed against two references:
the muscle's own signal next to it (the mean over the muscle's interior voxels within two
voxels, so a fatty patch that reaches the border is read as muscle, not as the fat outside;
the interior's median where too few are near) and the surrounding fat's (the median over
clearly fatty free voxels near the muscle). Whatever the two do not explain is void. Both
references are local, so a smooth bias field cancels, and the void share needs no reference.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: Free voxels this fatty (F / (W + F)) near a muscle are its fat reference.
FAT_REFERENCE_FRACTION = 0.8
#: How far around the muscle (voxels) the fat reference is taken.
FAT_REFERENCE_REACH = 4
#: Window (voxels) of interior muscle that is a border voxel's muscle reference, and how many
#: interior voxels it must hold.
LOCAL_WINDOW, LOCAL_MIN_VOXELS = 5, 4


@dataclass(frozen=True)
class Shares:
    muscle: np.ndarray  # share of each voxel's volume that is muscle, 0..1
    fat: np.ndarray  # share that is the surrounding fat, 0..1
    fat_signal: tuple[float, float]  # (water, fat) signal of pure surrounding fat
    interior: np.ndarray  # the muscle's voxels not on its border (the muscle reference's source)


def unmix(water: np.ndarray, fat: np.ndarray, mask: np.ndarray, free: np.ndarray) -> Shares | None:
    """Muscle and surrounding-fat shares of every voxel of a section (2-D arrays), or None
    where the muscle has no interior or no fat lies near it."""
    inner = ndimage.binary_erosion(mask)
    if inner.sum() < 3:
        return None
    near = ndimage.binary_dilation(mask, iterations=FAT_REFERENCE_REACH) & free
    fatty = near & (fat > FAT_REFERENCE_FRACTION * (water + fat))
    if fatty.sum() < 5:
        return None
    wf, ff = float(np.median(water[fatty])), float(np.median(fat[fatty]))
    weight = ndimage.uniform_filter(inner.astype(float), LOCAL_WINDOW, mode="constant")
    local = weight * LOCAL_WINDOW**2 >= LOCAL_MIN_VOXELS

    def local_mean(channel):
        total = ndimage.uniform_filter(np.where(inner, channel, 0.0), LOCAL_WINDOW, mode="constant")
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(local, total / weight, np.median(channel[inner]))

    wm, fm = local_mean(water), local_mean(fat)
    det = wm * ff - wf * fm
    det = np.where(np.abs(det) > 1e-9, det, np.nan)
    muscle = (water * ff - wf * fat) / det
    surrounding = (wm * fat - fm * water) / det
    muscle = np.clip(np.nan_to_num(muscle, nan=mask.astype(float)), 0.0, 1.0)
    surrounding = np.clip(np.nan_to_num(surrounding, nan=0.0), 0.0, 1.0)
    return Shares(muscle, surrounding, (wf, ff), inner)

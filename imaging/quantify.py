"""Muscle morphometry from a label map: CSA, lean CSA and fat fraction at each disc level.

At each disc the cross-sectional area is read on the axial slices that bracket the disc plane
and interpolated linearly to it (labels are whole voxels: a border voxel counts when the
segmenter gave it to the muscle, i.e. mostly muscle; half-in voxels balance out). The fat
fraction is the signal-weighted fraction sum(F) / sum(F + W) over the muscle on those slices,
with the muscle's outer ring of voxels left out where enough remain (border voxels mix in the
fat around the muscle), and with the Rician noise floor removed from each channel: sigma comes
from the air around the body. Lean CSA = CSA x (1 - fat fraction).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from imaging.labels import MUSCLE_LABELS
from imaging.levels import Levels
from imaging.morphometry import Morphometry, MuscleMeasure

#: Keep the eroded core for the fat fraction only if it holds at least this share of the ROI.
MIN_CORE_SHARE = 0.4


def quantify(labels: np.ndarray, water: np.ndarray, fat: np.ndarray, affine: np.ndarray, levels: Levels,
             subject: str, noise_sigma: tuple[float, float] | None = None) -> Morphometry:
    """Morphometry of every labelled muscle at every level found (canonical arrays), Dixon."""
    sigma_w, sigma_f = noise_sigma if noise_sigma is not None else background_sigma(water, fat)

    def dixon(masks, weights, slices):
        return _fat_fraction(masks, weights, [water[:, :, k] for k in slices], [fat[:, :, k] for k in slices],
                             sigma_w, sigma_f)

    return measure(labels, affine, levels, subject, dixon)


#: fat_fraction(masks on the two bracketing slices, their weights, their slice indices) -> 0..1
FatFraction = Callable[[list, list, list], float]


def measure(labels: np.ndarray, affine: np.ndarray, levels: Levels, subject: str,
            fat_fraction: FatFraction) -> Morphometry:
    """CSA from the labels at each disc, and the fat fraction from `fat_fraction`, whatever the contrast."""
    pixel_area = float(np.linalg.norm(np.cross(affine[:3, 0], affine[:3, 1])))
    voxel_volume = abs(float(np.linalg.det(affine[:3, :3])))
    rows = []
    for level in levels.found:
        position = levels.disc_slice[level]
        k0 = int(np.clip(np.floor(position), 0, labels.shape[2] - 1))
        k1 = min(k0 + 1, labels.shape[2] - 1)
        weight = float(np.clip(position - k0, 0.0, 1.0)) if k1 != k0 else 0.0
        for (muscle, side), value in MUSCLE_LABELS.items():
            masks = [labels[:, :, k] == value for k in (k0, k1)]
            areas = [mask.sum() * pixel_area for mask in masks]
            csa = (1 - weight) * areas[0] + weight * areas[1]
            ff = fat_fraction(masks, [1 - weight, weight], [k0, k1])
            rows.append(MuscleMeasure(muscle, side, level, round(float(csa), 1),
                                      round(float(csa * (1 - ff)), 1), round(float(ff), 4)))
    volumes = {f"{m}_{s}": round(float((labels == v).sum() * voxel_volume), 1) for (m, s), v in MUSCLE_LABELS.items()}
    return Morphometry(subject, tuple(rows), provenance={}, volumes_mm3=volumes)


def core(mask: np.ndarray) -> np.ndarray:
    """The muscle's section without its outer ring of voxels, if at least MIN_CORE_SHARE remains."""
    inner = ndimage.binary_erosion(mask)
    return inner if inner.sum() >= MIN_CORE_SHARE * mask.sum() else mask


def background_sigma(water: np.ndarray, fat: np.ndarray) -> tuple[float, float]:
    """Rician sigma of each channel from the air around the body (Rayleigh: E[M^2] = 2 sigma^2)."""
    total = water + fat
    body = ndimage.binary_fill_holes(total > 0.2 * np.percentile(total, 99))
    air = ~ndimage.binary_dilation(body, iterations=3)
    if air.sum() < 100:
        return 0.0, 0.0
    return (float(np.sqrt(np.mean(water[air] ** 2) / 2)), float(np.sqrt(np.mean(fat[air] ** 2) / 2)))


def _fat_fraction(masks, weights, waters, fats, sigma_w: float, sigma_f: float) -> float:
    fat_sum = water_sum = 0.0
    for mask, weight, w, f in zip(masks, weights, waters, fats):
        if weight <= 0 or not mask.any():
            continue
        roi = core(mask)
        fat_sum += weight * roi.sum() * _mean_amplitude(f[roi], sigma_f)
        water_sum += weight * roi.sum() * _mean_amplitude(w[roi], sigma_w)
    total = fat_sum + water_sum
    return float(np.clip(fat_sum / total, 0.0, 1.0)) if total > 0 else 0.0


def _mean_amplitude(magnitudes: np.ndarray, sigma: float) -> float:
    """Mean true amplitude under Rician magnitudes: strong voxels corrected one by one
    (E[M^2] = A^2 + 2 sigma^2 -> A ~ sqrt(M^2 - sigma^2) at high SNR), weak ones pooled
    (their mean A from the pooled second moment), so the noise floor does not add fat."""
    if sigma <= 0:
        return float(magnitudes.mean())
    strong = magnitudes >= 5 * sigma  # noise alone almost never reaches 5 sigma (Rayleigh tail e^-12.5)
    total = np.sqrt(np.maximum(magnitudes[strong] ** 2 - sigma**2, 0.0)).sum()
    weak = magnitudes[~strong]
    if weak.size:
        total += weak.size * np.sqrt(max(float(np.mean(weak**2)) - 2 * sigma**2, 0.0))
    return float(total / magnitudes.size)

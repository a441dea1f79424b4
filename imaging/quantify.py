"""Muscle morphometry from a label map: CSA, lean CSA and fat fraction at each disc level.

CSA at a disc is read on the two axial slices that bracket the disc plane and interpolated
linearly to it; the fat fraction over a triangular slab FAT_FRACTION_SLAB_MM either side of the
plane. On Dixon images each section is read with its border as partial volume
(imaging.partial_volume): interior voxels count whole; a border voxel (the muscle's outer ring
and the free ring just outside it) counts its muscle share towards the area, and its signal
less the surrounding fat's share towards the fat fraction. The fat fraction is sum(F) /
sum(F + W) over that muscle tissue, with the Rician noise floor removed from both channels
(sigma from the air around the body, or from inside it where the air is masked or
absent: imaging.noise). Lean CSA = CSA x (1 - fat fraction). Other contrasts
count whole labelled voxels (see `measure`).
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from imaging.labels import ROW_LABELS
from imaging.levels import Levels
from imaging.morphometry import Morphometry, MuscleMeasure
from imaging.noise import estimate_noise
from imaging.partial_volume import FAT_REFERENCE_REACH, unmix

#: Half-width of the triangular slab the fat fraction is read over (CSA uses the two slices
#: bracketing the disc): more voxels against the noise floor of a lean muscle's fat signal.
FAT_FRACTION_SLAB_MM = 7.5
#: Keep the eroded core for the fat fraction only if it holds at least this share of the ROI.
MIN_CORE_SHARE = 0.4


def quantify(labels: np.ndarray, water: np.ndarray, fat: np.ndarray, affine: np.ndarray, levels: Levels,
             subject: str, noise_sigma: tuple[float, float] | None = None,
             crossings: dict | None = None) -> Morphometry:
    """Morphometry of every labelled muscle at every level found (canonical arrays), Dixon.
    noise_sigma: (water, fat) Rician sigma, default imaging.noise.estimate_noise; crossings:
    where to read each muscle on oblique slices (imaging.obliquity.muscle_crossings)."""
    sigma_w, sigma_f = noise_sigma if noise_sigma is not None else background_sigma(water, fat)

    @functools.lru_cache(maxsize=None)
    def section(k, value):
        return dixon_section(labels[:, :, k], value, water[:, :, k], fat[:, :, k], sigma_w, sigma_f)

    def dixon(value, slices, weights):
        signals = [(weight * section(k, value).fat, weight * section(k, value).water)
                   for k, weight in zip(slices, weights) if np.any(labels[:, :, k] == value)]
        fat_sum, water_sum = (sum(x) for x in zip(*signals)) if signals else (0.0, 0.0)
        return float(np.clip(fat_sum / (fat_sum + water_sum), 0.0, 1.0)) if fat_sum + water_sum > 0 else 0.0

    return measure(labels, affine, levels, subject, dixon, lambda k, value: section(k, value).area, crossings)


#: fat_fraction(label value, slice indices, their weights) -> 0..1
FatFraction = Callable[[int, list, list], float]
#: section_area(slice index, label value) -> area in voxels (may be fractional)
SectionArea = Callable[[int, int], float]


def measure(labels: np.ndarray, affine: np.ndarray, levels: Levels, subject: str,
            fat_fraction: FatFraction, section_area: SectionArea | None = None,
            crossings: dict | None = None) -> Morphometry:
    """CSA at each disc from `section_area` (default: whole labelled voxels), and the fat
    fraction from `fat_fraction`, whatever the contrast. A muscle not labelled on the disc's
    slices, or with less than one pixel's area there (labelled only on the slice that carries
    no weight), gets no row (not measured; absent is not zero: anatomic phantom subjects wrote
    quadratus lumborum at L5-S1 as 0.0 mm^2 with a fat fraction, passing QC). crossings:
    {(label value, level): imaging.obliquity.Crossing}: read that muscle at the crossing's
    slice and scale its CSA by its factor (oblique slices); others at the disc's slice."""
    if section_area is None:
        def section_area(k, value):
            return float(np.count_nonzero(labels[:, :, k] == value))
    pixel_area = float(np.linalg.norm(np.cross(affine[:3, 0], affine[:3, 1])))
    voxel_volume = abs(float(np.linalg.det(affine[:3, :3])))
    slab = max(1.0, FAT_FRACTION_SLAB_MM / float(np.linalg.norm(affine[:3, 2])))  # in slices
    rows = []
    crossings = crossings or {}
    for level in levels.found:
        for (muscle, side), value in ROW_LABELS.items():
            crossing = crossings.get((value, level))
            position = levels.disc_slice[level] if crossing is None else crossing.slice
            k0, k1 = bracketing_slices(position, labels.shape[2])
            if not any(np.any(labels[:, :, k] == value) for k in (k0, k1)):
                continue  # not labelled at this disc: not measured, which is not a zero area
            weight = float(np.clip(position - k0, 0.0, 1.0)) if k1 != k0 else 0.0
            near = [k for k in range(int(np.ceil(position - slab)), int(np.floor(position + slab)) + 1)
                    if 0 <= k < labels.shape[2]]
            near_weights = [max(0.0, 1 - abs(k - position) / slab) for k in near]
            areas = [section_area(k, value) * pixel_area if np.any(labels[:, :, k] == value) else 0.0 for k in (k0, k1)]
            csa = ((1 - weight) * areas[0] + weight * areas[1]) * (1.0 if crossing is None else crossing.factor)
            if csa < pixel_area:  # a sliver on the slice of (nearly) no weight: no section at the disc
                continue
            ff = fat_fraction(value, near, near_weights)
            rows.append(MuscleMeasure(muscle, side, level, round(float(csa), 1),
                                      round(float(csa * (1 - ff)), 1), round(float(ff), 4)))
    volumes = {f"{m}_{s}": round(float((labels == v).sum() * voxel_volume), 1) for (m, s), v in ROW_LABELS.items()
               if np.any(labels == v)}
    return Morphometry(subject, tuple(rows), provenance={}, volumes_mm3=volumes)


def bracketing_slices(position: float, n_slices: int) -> tuple[int, int]:
    """The two slice indices a level's CSA is read from at a (fractional) slice position,
    clipped to the volume (both the last slice at its end)."""
    k0 = int(np.clip(np.floor(position), 0, n_slices - 1))
    return k0, min(k0 + 1, n_slices - 1)


def core(mask: np.ndarray) -> np.ndarray:
    """The muscle's section without its outer ring of voxels, if at least MIN_CORE_SHARE remains."""
    inner = ndimage.binary_erosion(mask)
    return inner if inner.sum() >= MIN_CORE_SHARE * mask.sum() else mask


@dataclass(frozen=True)
class Section:
    area: float  # voxels, border voxels by their muscle share
    fat: float  # fat signal of the muscle tissue, noise floor removed
    water: float


def dixon_section(section: np.ndarray, value: int, water: np.ndarray, fat: np.ndarray,
                  sigma_w: float = 0.0, sigma_f: float = 0.0) -> Section:
    """One muscle on one slice with its border read as partial volume (module docstring).

    A free voxel between two muscles holds some of each: each counts its part (the voxel's
    muscle share split between them). A free voxel that reads as more than half this muscle
    was left out by the segmenter on purpose (disc, another organ) and counts nothing. Without
    a fat reference nearby, or a section too thin to have an interior, the labels count whole
    and the fat fraction comes from the core.
    """
    box = _box(section == value, margin=FAT_REFERENCE_REACH + 1)
    section, w, f = section[box], water[box], fat[box]
    # the section's total area: free voxels enclosed by the muscle are intramuscular fat
    mask = ndimage.binary_fill_holes(section == value) & np.isin(section, (0, value))
    free = (section == 0) & ~mask
    shares = unmix(w, f, mask, free)
    if shares is None:
        roi = core(mask)
        return Section(float(mask.sum()), mask.sum() * _mean_amplitude(f[roi], sigma_f),
                       mask.sum() * _mean_amplitude(w[roi], sigma_w))
    inner = shares.interior
    ring = ndimage.binary_dilation(mask) & free
    border = (mask & ~inner) | ring
    split = np.where(ring, _neighbour_share(section, value), 1.0)[border]
    counted = shares.muscle[border] * split
    split[ring[border] & (counted > 0.5)] = 0.0  # left out on purpose
    counted[split == 0] = 0.0
    keep = split > 0
    tissue = []
    for channel, sigma, reference in ((f, sigma_f, shares.fat_signal[1]), (w, sigma_w, shares.fat_signal[0])):
        values = channel[border][keep]
        # the noise floor comes off the border's summed signal in proportion
        floor = _mean_amplitude(values, sigma) / values.mean() if values.size and values.mean() > 0 else 1.0
        border_tissue = float(np.sum(split[keep] * (floor * values - shares.fat[border][keep] * reference)))
        tissue.append(max(border_tissue, 0.0) + inner.sum() * _mean_amplitude(channel[inner], sigma))
    return Section(float(inner.sum() + counted.sum()), *tissue)


def _neighbour_share(section: np.ndarray, value: int) -> np.ndarray:
    """Of the muscle voxels around each voxel (3 x 3), the share that is muscle `value`: how a
    free voxel between two muscles is split between them."""
    counts = {v: ndimage.uniform_filter((section == v).astype(float), 3, mode="constant")
              for v in np.unique(section[section > 0])}
    total = sum(counts.values())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, counts[value] / total, 0.0)


def _box(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    found = ndimage.find_objects(mask.astype(np.uint8))[0]
    return tuple(slice(max(0, f.start - margin), min(n, f.stop + margin)) for f, n in zip(found, mask.shape))


def background_sigma(water: np.ndarray, fat: np.ndarray) -> tuple[float, float]:
    """Rician sigma of each channel (imaging.noise.estimate_noise: from the air around the body,
    or inside the body where the background is masked to zero or absent)."""
    estimate = estimate_noise(water, fat)
    return estimate.water, estimate.fat


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

"""Water-fat swaps: Dixon images given the wrong way round, or a reconstruction that swapped
water and fat in one region (a phase-unwrapping failure of two- and multi-point Dixon).

Subcutaneous adipose tissue must read fatty: its proton-density fat fraction is about 0.90
(gluteal subcutaneous fat 0.897 +/- 0.029, range 0.82-0.94, Franz et al. 2018, Int J Obes
42:175; 0.937 is the adipose-tissue value AMRA's body-composition analysis assumes). Swapped,
it reads about 0.1. The check reads the fat fraction of the layer just under the skin
(`SAT_DEPTH_MM`: below the dermis, 1-2 mm on the trunk, and within the thinnest back
subcutaneous fat of slim adults, 5 mm and more: Berikol et al. 2022, Eur Radiol 32:6504, ~8-10
mm dorsal fat at L1-L2) in `SECTORS` angular sectors around the body on every slice. The
sector reads the upper quartile of its band (`SECTOR_PERCENTILE`) and is swapped below
`SWAP_FAT_FRACTION` (the midpoint between 0.1 and 0.9); more than half the sectors read swapped
is a global swap: stop. Sectors below it while the volume is not are a regional swap: the
morphometry rows whose muscle lies towards such a sector, on a slice its fat fraction is read
from, are flagged `FLAG`. A swap inside the body that does not reach the subcutaneous fat shows
in the muscle itself: a row with more than half its voxels reading as adipose tissue
(`ADIPOSE_FAT_FRACTION`) is flagged too. A swap that reaches neither is not seen.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from imaging.body import body_outline, depth_mm
from imaging.labels import MUSCLE_LABELS
from imaging.levels import Levels
from imaging.morphometry import Morphometry
from lumbar_twin.errors import InputError

#: Depth band under the body outline read as subcutaneous fat (mm): below the dermis, within
#: the thinnest subcutaneous fat (module docstring).
SAT_DEPTH_MM = (2.0, 10.0)
#: Angular sectors around the body on each slice.
SECTORS = 12
#: A sector's reading is this percentile of its band's fat fractions: the band holds muscle too
#: where the fat is thin (a 5 mm layer fills a third of it), skin and blur where it is thick.
SECTOR_PERCENTILE = 75
#: Subcutaneous fat reading below this fat fraction is swapped (midpoint of ~0.9 and ~0.1).
SWAP_FAT_FRACTION = 0.5
#: A sector is read only with at least this many voxels in the band (a median of noise otherwise).
MIN_SECTOR_VOXELS = 8
#: A muscle is compared with the sectors within this angle of its direction from the body centre.
MUSCLE_REACH_RAD = np.pi / SECTORS * 2
FLAG = "water_fat_swap"
#: A voxel reads as adipose tissue from this fat fraction on: the lowest subcutaneous adipose
#: tissue value in Franz et al. 2018 (0.822). A muscle with more than half its voxels there is
#: swapped (its water read as fat) or has more fat than muscle (Goutallier grade 4).
ADIPOSE_FAT_FRACTION = 0.8
#: The outline is skin where the signal within this distance outside it is air ...
OUTSIDE_MM = 4.0
#: ... i.e. no more than the air's level plus this share of the bright tissue (99th percentile).
AIR_MARGIN = 0.05


@dataclass(frozen=True)
class SwapMap:
    """Subcutaneous fat fraction per slice and angular sector."""

    fat_fraction: np.ndarray  # (nz, SECTORS), NaN where not read
    centre: np.ndarray  # (nz, 2) body centre per slice, voxel indices (axes 0, 1)
    overall: float  # median reading over the sectors read
    spacing_mm: tuple[float, float, float]

    @property
    def swapped(self) -> np.ndarray:
        return np.nan_to_num(self.fat_fraction, nan=1.0) < SWAP_FAT_FRACTION

    @property
    def swapped_share(self) -> float:
        """Share of the sectors read (over all slices) that read lean."""
        read = np.isfinite(self.fat_fraction).sum()
        return float(self.swapped.sum() / read) if read else 0.0

    def regions(self) -> str:
        """The swapped sectors as 'slices a-b: sectors ...' text."""
        rows = [k for k in range(self.swapped.shape[0]) if self.swapped[k].any()]
        return ", ".join(f"slice {k}: {_directions(self.swapped[k])}" for k in rows[:6]) + \
            (f" and {len(rows) - 6} more slices" if len(rows) > 6 else "")


def subcutaneous_fat_map(water: np.ndarray, fat: np.ndarray, spacing_mm) -> SwapMap:
    """Read the subcutaneous fat's fat fraction (canonical (X, Y, Z) arrays, spacing in mm).

    A sector is read only where its outline is skin: air (the signal far outside the body)
    lies just outside it, not the edge of the field of view nor tissue too dim to pass the
    body threshold (coil sensitivity falls off away from the coil)."""
    total = water + fat
    body = body_outline(ndimage.gaussian_filter(total, (1.5, 1.5, 0)))  # smoothed: noise in the air stays out
    depth = depth_mm(body, spacing_mm)
    band = body & (depth >= SAT_DEPTH_MM[0]) & (depth <= SAT_DEPTH_MM[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        ff = np.where(total > 0, fat / total, np.nan)
    reach = max(1, int(round(OUTSIDE_MM / spacing_mm[0])))
    grown = np.stack([ndimage.binary_dilation(body[:, :, k], iterations=reach) for k in range(body.shape[2])], -1)
    far = ~np.stack([ndimage.binary_dilation(grown[:, :, k], iterations=2 * reach) for k in range(body.shape[2])], -1)
    air = float(np.median(total[far])) if far.sum() >= 100 else 0.0
    limit = air + AIR_MARGIN * float(np.percentile(total, 99))
    ring = grown & ~body
    edge = np.ones(body.shape[:2], bool)
    edge[1:-1, 1:-1] = False
    to_edge = ndimage.distance_transform_edt(~edge, sampling=spacing_mm[:2])
    band &= (to_edge > SAT_DEPTH_MM[1] + OUTSIDE_MM)[:, :, None]
    nz = water.shape[2]
    table = np.full((nz, SECTORS), np.nan)
    centre = np.full((nz, 2), np.nan)
    x, y = np.meshgrid(np.arange(water.shape[0]), np.arange(water.shape[1]), indexing="ij")
    for k in range(nz):
        if not body[:, :, k].any():
            continue
        centre[k] = [x[body[:, :, k]].mean(), y[body[:, :, k]].mean()]
        sector = _sector(x - centre[k, 0], y - centre[k, 1], spacing_mm)
        outside = ring[:, :, k] & (to_edge > 0)
        out_sector, out_total = sector[outside], total[:, :, k][outside]
        inside = band[:, :, k] & np.isfinite(ff[:, :, k])
        in_sector, in_ff = sector[inside], ff[:, :, k][inside]
        for s in range(SECTORS):
            around = out_total[out_sector == s]
            if around.size < MIN_SECTOR_VOXELS or np.median(around) > limit:
                continue  # not skin: the field of view's edge or dim tissue
            here = in_ff[in_sector == s]
            if here.size >= MIN_SECTOR_VOXELS:
                table[k, s] = float(np.percentile(here, SECTOR_PERCENTILE))
    overall = float(np.nanmedian(table)) if np.isfinite(table).any() else float("nan")
    return SwapMap(table, centre, overall, tuple(float(v) for v in spacing_mm))


def check_global_swap(swap: SwapMap, water_source, fat_source) -> None:
    """Stop where most of the subcutaneous fat (sectors x slices) reads lean."""
    if swap.swapped_share > 0.5:
        raise InputError(fat_source, f"fat image: the subcutaneous fat reads lean (fat fraction below "
                                     f"{SWAP_FAT_FRACTION:g}) in {100 * swap.swapped_share:.0f} % of the sectors read, "
                                     f"median {swap.overall:.2f} (adipose tissue is about 0.9): water and fat swapped "
                                     f"against the water image {water_source}? give them the right way round")


def flag_swapped_rows(morphometry: Morphometry, swap: SwapMap, labels: np.ndarray, levels: Levels,
                      slab_slices: float, water: np.ndarray, fat: np.ndarray) -> tuple[Morphometry, list[str]]:
    """Flag every row whose fat fraction is read (the slices within `slab_slices` of its disc)
    where water and fat look swapped: towards a swapped subcutaneous sector, or with more than
    half of its voxels reading as adipose tissue (fat fraction at least ADIPOSE_FAT_FRACTION:
    a swap inside the body, or more fat than muscle). Returns the new morphometry and one
    warning per flagged row."""
    x, y = np.meshgrid(np.arange(labels.shape[0]), np.arange(labels.shape[1]), indexing="ij")
    sector_angles = (np.arange(SECTORS) + 0.5) * 2 * np.pi / SECTORS - np.pi
    rows, warnings = [], []
    for row in morphometry.muscles:
        value = MUSCLE_LABELS[(row.muscle, row.side)]
        position = levels.disc_slice.get(row.level)
        slices = [k for k in range(int(np.ceil(position - slab_slices)), int(np.floor(position + slab_slices)) + 1)
                  if 0 <= k < labels.shape[2] and np.any(labels[:, :, k] == value)] if position is not None else []
        hit = []
        for k in slices:
            if not swap.swapped[k].any():
                continue
            mask = labels[:, :, k] == value
            angle = np.arctan2((y[mask].mean() - swap.centre[k, 1]) * swap.spacing_mm[1],
                               (x[mask].mean() - swap.centre[k, 0]) * swap.spacing_mm[0])
            near = np.abs(np.angle(np.exp(1j * (sector_angles - angle)))) <= MUSCLE_REACH_RAD
            if np.any(swap.swapped[k] & near):
                hit.append(k)
        reason = (f"the subcutaneous fat towards it reads lean on slice{'s' if len(hit) > 1 else ''} "
                  f"{', '.join(map(str, hit))}") if hit else ""
        if slices and not hit:
            inside = labels[:, :, slices] == value
            total = (water + fat)[:, :, slices][inside]
            adipose = float(np.mean(fat[:, :, slices][inside] >= ADIPOSE_FAT_FRACTION * np.maximum(total, 1e-12)))
            if adipose > 0.5:
                reason = (f"{100 * adipose:.0f} % of its voxels read as adipose tissue (fat fraction >= "
                          f"{ADIPOSE_FAT_FRACTION:g})")
        if reason:
            row = replace(row, flags=tuple(row.flags) + (FLAG,))
            warnings.append(f"{row.muscle} {row.side} {row.level}: water and fat look swapped there ({reason}): its "
                            "fat fraction and lean CSA are not a measurement of muscle")
        rows.append(row)
    return replace(morphometry, muscles=tuple(rows)), warnings


def _sector(dx: np.ndarray, dy: np.ndarray, spacing_mm) -> np.ndarray:
    angle = np.arctan2(dy * spacing_mm[1], dx * spacing_mm[0])  # 0 = patient's right, pi/2 = anterior
    return np.clip(((angle + np.pi) / (2 * np.pi) * SECTORS).astype(int), 0, SECTORS - 1)


def _directions(swapped_row: np.ndarray) -> str:
    names = []
    for s in np.flatnonzero(swapped_row):
        angle = np.degrees((s + 0.5) * 2 * np.pi / SECTORS - np.pi)
        names.append(f"{angle:.0f} deg")
    return "sectors at " + ", ".join(names) + " (0 = right, 90 = anterior)"

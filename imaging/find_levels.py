"""Disc levels and vertebral bodies found on the image itself, when no vertebra label map is given.

Works on a fat-fraction-like map (Dixon F/(F+W), or the single-contrast pseudo map of
imaging.single_contrast), where vertebral marrow is fatty (about 0.3-0.6 on Dixon; brighter
than muscle on T1) and discs are lean.

1. The column: marrow and discs alternate along the spine every 35-40 mm, which nothing else
   near the midline does. For every in-plane point within 25 mm of the body's midline, soft tissue on nearly every slice, the
   fat-map profile along the slices is scored by its power at periods of 25-60 mm; the
   column is the best-scoring point (averaged over a 10 mm disk), the score being the band's
   power times the square of its share of all the profile's variation (a fat patch in a
   muscle is one bump, broad in frequency; the column is periodic).
2. Discs: the fat-map profile along the column (a disk of 6 mm radius around it, followed
   slice by slice to the centre of the marrow section, so lordosis does not lose it) dips at
   each disc. Runs of slices below the midpoint of the profile's 15th and 85th percentiles are
   the discs; each disc plane is the dip-weighted centre of its run (fractional slice).
3. Numbering from the sacrum: the sacrum is fused, so below L5-S1 the column shows no further
   disc for at least SACRUM_MM; and the iliac wings (bone, dark on both contrasts, 60-120 mm
   from the midline) reach up to about the L5-S1 disc. The lowest disc is L5-S1 when both hold;
   the discs above are L4-L5 .. L1-L2 (further ones, T12-L1, are ignored). Otherwise the discs
   cannot be numbered and an InputError says so.
4. Vertebral bodies: between two discs, the marrow section on the body's middle slice (fat map
   between the disc's and the surrounding fat's, connected to the column, necks under 8 mm cut)
   stands for
   the whole body; the label map holds L1..L5 = 1..5 and S1 = 6 (default convention) for the
   segmenter's spine exclusion and seeds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from imaging.labels import DEFAULT_VERTEBRA_LABELS
from imaging.levels import Levels
from imaging.morphometry import LEVELS
from imaging.quantify import FAT_FRACTION_SLAB_MM
from imaging.body import body_outline
from imaging.segment import smoothed_fat_fraction
from lumbar_twin.errors import InputError

PERIOD_MM = (25.0, 60.0)
SEARCH_MM = 25.0
PROFILE_RADIUS_MM = 6.0
SACRUM_MM = 20.0
WING_MM = (60.0, 120.0)
MIN_DISC_GAP_MM = 20.0


@dataclass(frozen=True)
class FoundSpine:
    levels: Levels
    vertebrae: np.ndarray  # label map, default convention (L1..L5 = 1..5, S1 = 6)
    column_xy: np.ndarray  # (n slices, 2) voxel centre of the column on each slice


def find_spine(water: np.ndarray, fat: np.ndarray, spacing_mm, source: str = "image",
               lowest_disc: str | None = None) -> FoundSpine:
    """find_levels on Dixon water and fat (or the single-contrast pseudo channels)."""
    total, ff = smoothed_fat_fraction(water, fat)
    # the per-slice outline: coil sensitivity falls off towards a slab's ends, and one
    # threshold for the volume lost the back of the real scan's lowest five slices (the column)
    return find_levels(ff, total, body_outline(total), spacing_mm, source, lowest_disc)


def find_levels(ff: np.ndarray, total: np.ndarray, body: np.ndarray, spacing_mm, source: str = "image",
                lowest_disc: str | None = None) -> FoundSpine:
    """Levels and vertebral bodies from a fat-fraction-like map `ff`, total signal and body mask.

    `lowest_disc` (e.g. "L4-L5") names the lowest disc found when the sacrum is not in view: the
    discs are then numbered from it, without the sacrum check."""
    sx, sy, sz = spacing_mm
    nz = ff.shape[2]
    if nz * sz < 2 * PERIOD_MM[0]:
        raise InputError(source, f"the volume spans only {nz * sz:.0f} mm along the spine: too short to find "
                                 "the discs (give --vertebrae)")
    smooth = ndimage.gaussian_filter(np.where(body, ff, 0.0), sigma=(3.0 / sx, 3.0 / sy, 0))
    # bone and air carry no fat-map meaning (a single contrast reads them as anything): the
    # column is soft tissue (marrow or disc) on nearly every slice, transverse processes are not
    soft_signal = 0.5 * _muscle_signal(total, ff, body)
    soft = body & (total > soft_signal)
    column = _column(smooth, soft, spacing_mm, source)
    track, profile = _track(smooth, ff, total, column, spacing_mm, soft_signal)
    discs = _discs(profile, sz)
    if len(discs) < 2:
        raise InputError(source, f"found {len(discs)} disc(s) along the spine, need at least two to number them "
                                 "(give --vertebrae)")
    if lowest_disc is None:
        lowest = _check_sacrum(discs, profile, total, body, track, spacing_mm, source)
        names, how = LEVELS[::-1], "found on the image, numbered from the sacrum"
    else:
        lowest = 0
        names = LEVELS[:LEVELS.index(lowest_disc) + 1][::-1]
        how = f"found on the image, numbered from the user's anchor (lowest disc {lowest_disc})"
    numbered = {level: position for level, position in zip(names, discs[lowest:])}
    vertebrae = _bodies(ff, total, body, track, discs[lowest:], numbered, spacing_mm)
    # a disc on the volume's first or last slices is numbered but not measured: its fat fraction
    # is read within FAT_FRACTION_SLAB_MM of it and its CSA between the slices that bracket it
    edge = {level: p for level, p in numbered.items() if min(p, nz - 1 - p) * sz < FAT_FRACTION_SLAB_MM}
    if edge:
        how += "; " + ", ".join(f"{level} at slice {p:.1f}" for level, p in edge.items()) + \
            f" lies within {FAT_FRACTION_SLAB_MM:g} mm of the volume's edge, not measured"
    measured = {level: p for level, p in numbered.items() if level not in edge}
    return FoundSpine(Levels(measured, f"{source} ({how})", tuple(edge)), vertebrae, track)


def _muscle_signal(total, ff, body) -> float:
    """Median total signal of lean tissue (fat map under 0.2: muscle, discs) in the body: the
    reference for "soft tissue, not bone or air". The body's median was the reference before
    2026-12-01; subcutaneous fat raises it, and on the real Dixon scan the column then fell
    below half of it on 5 of 29 slices (0.40-0.72 of it; 0.58 or more of lean tissue's)."""
    lean = body & (ff < 0.2)
    return float(np.median(total[lean])) if lean.sum() > 100 else float(np.median(total[body]))


def _column(smooth, soft, spacing_mm, source) -> np.ndarray:
    """(x, y) voxel of the column: the strongest 25-60 mm periodicity along the slices."""
    sx, sy, sz = spacing_mm
    nx, ny, nz = smooth.shape
    profiles = smooth - smooth.mean(axis=2, keepdims=True)
    power = np.abs(np.fft.rfft(profiles, axis=2)) ** 2
    freq = np.fft.rfftfreq(nz, d=sz)
    with np.errstate(divide="ignore"):
        period = np.where(freq > 0, 1.0 / np.maximum(freq, 1e-12), np.inf)
    band = (period >= PERIOD_MM[0]) & (period <= PERIOD_MM[1])
    in_band = power[:, :, band].sum(axis=2) if band.any() else np.zeros((nx, ny))
    # periodic, not a single bump (a fat patch): the band's share of all variation counts twice
    share = in_band / np.maximum(power[:, :, 1:].sum(axis=2), 1e-12)
    score = in_band * share**2
    xs = np.nonzero(soft.any(axis=(1, 2)))[0]
    inside = ndimage.binary_erosion(soft.mean(axis=2) >= 0.9, iterations=max(1, int(round(3.0 / sx))))
    midline = 0.5 * (xs.min() + xs.max())
    gx = np.arange(nx)[:, None]
    score = ndimage.uniform_filter(score, size=(max(1, int(10 / sx)), max(1, int(10 / sy))))
    score = np.where(inside & (np.abs(gx - midline) * sx < SEARCH_MM), score, 0.0)
    if score.max() <= 0:
        raise InputError(source, "no vertebral column found (no marrow-disc alternation near the midline)")
    return np.array(np.unravel_index(np.argmax(score), score.shape), float)


def _track(smooth, ff, total, column, spacing_mm, soft_signal):
    """The column's centre on each slice (following the marrow and disc section) and the
    fat-map profile along it. Only soft tissue counts: where bone fills the disk (sacrum), the
    fat map means nothing on a single contrast, and the slice is given the marrow's level."""
    sx, sy, _ = spacing_mm
    nx, ny, nz = ff.shape
    soft = total > soft_signal
    gx, gy = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    track = np.zeros((nz, 2))
    profile = np.zeros(nz)
    for k in range(nz):
        # the section's centre: low-variance soft tissue around the column point, 25 mm at most away
        near = ((gx - column[0]) * sx) ** 2 + ((gy - column[1]) * sy) ** 2 < 25.0**2
        section = near & (np.abs(smooth[:, :, k] - smooth[int(column[0]), int(column[1]), k]) < 0.12)
        lab, _ = ndimage.label(section)
        keep = lab == lab[int(column[0]), int(column[1])] if lab[int(column[0]), int(column[1])] else section
        centre = np.array([gx[keep].mean(), gy[keep].mean()]) if keep.sum() > 10 else column
        track[k] = 0.5 * (centre + column)  # damped: half-way to the column line
        disk = ((gx - track[k, 0]) * sx) ** 2 + ((gy - track[k, 1]) * sy) ** 2 < PROFILE_RADIUS_MM**2
        tissue = disk & soft[:, :, k]
        profile[k] = ff[:, :, k][tissue].mean() if tissue.sum() >= 0.5 * disk.sum() else np.nan
    marrow_level = np.nanpercentile(profile, 85) if np.isfinite(profile).any() else 0.0
    return track, np.where(np.isfinite(profile), profile, marrow_level)


def _discs(profile, sz) -> list[float]:
    """Fractional slice of each disc (low runs of the profile), bottom first."""
    lo, hi = np.percentile(profile, 15), np.percentile(profile, 85)
    threshold = 0.5 * (lo + hi)
    low = profile < threshold
    runs, n = ndimage.label(low)
    discs = []
    for r in range(1, n + 1):
        ks = np.nonzero(runs == r)[0]
        depth = threshold - profile[ks]
        discs.append(float((ks * depth).sum() / depth.sum()))
    merged = []
    for d in sorted(discs):
        if merged and (d - merged[-1]) * sz < MIN_DISC_GAP_MM:
            merged[-1] = 0.5 * (merged[-1] + d)
        else:
            merged.append(d)
    return merged


def _check_sacrum(discs, profile, total, body, track, spacing_mm, source) -> int:
    """Index of L5-S1 among the discs (the lowest), after checking that the sacrum lies below it."""
    sx, sy, sz = spacing_mm
    lowest = discs[0]
    below_mm = lowest * sz
    if below_mm < SACRUM_MM:
        raise InputError(source, f"the lowest disc found lies {below_mm:.0f} mm above the volume's lower edge: "
                                 "cannot tell whether it is L5-S1 (the volume must reach into the sacrum, or give "
                                 "--vertebrae, or name the lowest disc in view with --lowest-disc)")
    nx, ny, nz = total.shape
    gx = np.arange(nx)[:, None]
    lean = np.median(total[body])
    k_top = min(nz - 1, int(round(lowest + 30.0 / sz)))
    wing_slices = 0
    for k in range(0, k_top + 1):
        lateral = np.abs(gx - track[k, 0]) * sx
        zone = body[:, :, k] & (lateral >= WING_MM[0]) & (lateral <= WING_MM[1])
        if zone.sum() and np.mean(total[:, :, k][zone] < 0.4 * lean) > 0.08:
            wing_slices += 1
    if wing_slices == 0:
        raise InputError(source, "no iliac wings beside the lowest disc found: cannot number the discs from the "
                                 "sacrum (is the sacrum in the volume? or give --vertebrae or --lowest-disc)")
    return 0


def _bodies(ff, total, body, track, discs, numbered, spacing_mm) -> np.ndarray:
    """Vertebra label map: each body's marrow section, from its middle slice, over its slices."""
    sx, sy, sz = spacing_mm
    nx, ny, nz = ff.shape
    out = np.zeros(ff.shape, np.uint8)
    gap = float(np.median(np.diff(discs))) if len(discs) > 1 else 36.0 / sz
    # each numbered disc has its lower vertebra below it and its upper vertebra above it
    ordered = sorted(numbered.items(), key=lambda item: item[1])  # lowest disc first
    bounds = {}
    for i, (level, position) in enumerate(ordered):
        upper_name, lower_name = level.split("-")
        below = ordered[i - 1][1] if i > 0 else max(0.0, position - gap)
        above = ordered[i + 1][1] if i + 1 < len(ordered) else min(nz - 1.0, position + gap)
        bounds.setdefault(lower_name, (below, position))
        bounds[upper_name] = (position, above)
    gx, gy = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    disc_half = 0.17 * gap  # a disc is about a third of a motion segment's height
    for name, (lower, upper) in bounds.items():
        start, stop = int(np.ceil(lower + disc_half)), int(np.floor(upper - disc_half))
        if name == "S1":
            start = int(np.ceil(lower))
        if stop < start or stop < 0 or start >= nz:
            continue
        mid = int(round(0.5 * (start + stop)))
        section = _marrow_section(ff[:, :, mid], total[:, :, mid], body[:, :, mid], track[mid], gx, gy, spacing_mm)
        if section is None:
            continue
        for k in range(max(0, start), min(nz, stop + 1)):
            out[:, :, k][section] = DEFAULT_VERTEBRA_LABELS[name]
    return out


def _marrow_section(ff, total, body, centre, gx, gy, spacing_mm):
    """The vertebral body's section on a slice: marrow-like tissue connected to the column."""
    sx, sy, _ = spacing_mm
    near = ((gx - centre[0]) * sx) ** 2 + ((gy - centre[1]) * sy) ** 2 < 35.0**2
    smooth = ndimage.gaussian_filter(ff, sigma=(1.0, 1.0))
    middle = ((gx - centre[0]) * sx) ** 2 + ((gy - centre[1]) * sy) ** 2 < 5.0**2
    marrow = float(np.median(smooth[middle]))
    # between the lean tissue around (muscle, disc) and the marrow, and below the fat
    lower = 0.6 * marrow
    upper = marrow + 0.5 * (1.0 - marrow)
    candidate = near & body & (smooth > lower) & (smooth < upper) & (total > 0.3 * np.median(total[body]))
    # cut necks narrower than 2 x 4 mm (into the canal, along a psoas edge): erode, keep the
    # part at the column, grow it back inside the candidate
    radius = max(1, int(round(4.0 / min(sx, sy))))
    disk = ndimage.iterate_structure(ndimage.generate_binary_structure(2, 1), radius)
    core = ndimage.binary_erosion(candidate, disk)
    lab, _ = ndimage.label(core)
    cx, cy = int(round(centre[0])), int(round(centre[1]))
    window = lab[max(0, cx - radius):cx + radius + 1, max(0, cy - radius):cy + radius + 1]
    values = window[window > 0]
    if values.size == 0:
        return None
    kept = lab == np.bincount(values).argmax()
    return ndimage.binary_dilation(kept, disk) & candidate

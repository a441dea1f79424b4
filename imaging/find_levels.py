"""Disc levels and vertebral bodies found on the image itself, when no vertebra label map is given.

Works on a fat-fraction-like map (Dixon F/(F+W), or the single-contrast pseudo map of
imaging.single_contrast), where vertebral marrow is fatty (about 0.3-0.6 on Dixon; brighter
than muscle on T1) and discs are lean.

1. The column: marrow and discs alternate along the spine every 35-40 mm, which nothing else
   near the midline does in step across 25 mm. Lordosis first: each slice is shifted front to
   back so that the back muscles' posterior surface (the first lean tissue in front of the
   subcutaneous fat, 15-45 mm beside the midline) lies at one depth; the spine follows the
   back's curve, and a fixed in-plane point left the vertebral bodies on a third or more of the
   slices where it was not straightened (how far the column then follows that shift is fitted
   in step 2). Then, for every in-plane point within 25 mm of the body's midline, soft tissue
   on nearly every slice, the fat-map profile along the slices is scored by the share of its
   variation at periods of 25-60 mm, squared, times its correlations with the profiles
   COHERENCE_MM to either side and in front and behind (a vertebral body, 40-50 mm wide and
   27-38 mm deep, alternates in step; bowel loops in fat alternate with larger amplitude but
   not in step: scored by amplitude, the column fell on bowel in front of the spine on every
   subject of the anatomic phantom family; without the front-and-back term it fell on the
   body's front edge on a T1 `lumbar-twin phantom`, where the pseudo fat map's marrow is
   brightest); the column is the best-scoring point (averaged over a 10 mm disk).
2. Discs: the column's point on each slice is moved by a share (0..1) of the back's shift, and
   onto the sections' centre front to back, fitted to where the marrow and disc sections around
   the shifted points lie (lordosis carries the spine with the back; muscles thinning towards
   the sacrum, or thicker at some levels, move the back's surface and not the spine). The
   fat-map profile along the column (a disk of 6 mm radius around it, followed slice by slice
   to the centre of the marrow section) dips at each disc. Runs of slices below the midpoint of
   the profile's 15th and 85th percentiles are the discs; each disc plane is the dip-weighted
   centre of its run (fractional slice).
3. Numbering from the sacrum: the sacrum is fused, so below L5-S1 the column shows no further
   disc for at least SACRUM_MM; and the iliac wings (bone, dark on both contrasts, 60-120 mm
   from the midline) reach up to about the L5-S1 disc. The lowest disc is L5-S1 when both hold;
   the discs above are L4-L5 .. L1-L2 (further ones, T12-L1, are ignored). Otherwise the discs
   cannot be numbered and an InputError says so.
4. Vertebral bodies: between two discs, the marrow section on the body's middle slice (fat map
   between the disc's and the surrounding fat's, against the marrow's median within MARROW_MM
   of the column; connected to the column; necks narrower than 2 x NECK_MM cut) stands for the
   whole body, moved with the column from slice to slice; the label map holds L1..L5 = 1..5
   and S1 = 6 (default convention) for the segmenter's spine exclusion and seeds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from imaging.labels import DEFAULT_VERTEBRA_LABELS
from imaging.levels import Levels
from imaging.morphometry import LEVELS
from imaging.quantify import FAT_FRACTION_SLAB_MM
from imaging.body import body_outline, disk_footprint
from imaging.segment import smoothed_fat_fraction
from lumbar_twin.errors import InputError

PERIOD_MM = (25.0, 60.0)
SEARCH_MM = 25.0
PROFILE_RADIUS_MM = 6.0
#: Below L5-S1 the fused sacrum shows no disc for at least this far (mm). A stack that stops
#: inside L5 shows no disc below L4-L5 for up to half that disc plus L5's height (posterior
#: 26.3 +/- 1.9 mm, anterior 30.3 +/- 1.9 mm; Cook & Baker 2021, Int J Spine Surg 15:1072):
#: about 31-33 mm at the column. At 20 mm (before 2026-12-01) such a stack passed this test,
#: and the iliac crests, which reach L4-L5 (the real Dixon scan shows them dark, 60 mm long,
#: on both sides of its lowest slices), pass the wing test too: `lumbar-twin phantom` cut 20
#: or 25 mm below L4-L5 was numbered with L4-L5 called L5-S1, every level one too low,
#: silently (test). Its volumes reach 35-47 mm below L5-S1.
SACRUM_MM = 32.0
WING_MM = (60.0, 120.0)
MIN_DISC_GAP_MM = 20.0
#: Offsets (mm) to either side and front and back of the profiles a column point must alternate
#: in step with: inside a 40-50 mm wide, 27-38 mm deep vertebral body (Panjabi et al. 1992,
#: Spine 17:299) for points near its centre.
COHERENCE_MM = (12.0, 8.0)
#: The body's section is cut from the pedicles and arch at necks narrower than twice this
#: (mm; a disk). Lumbar pedicles widen downwards to 16.1 +/- 2.3 mm at L5 (Cook & Baker 2021,
#: Int J Spine Surg 15:1072), so at L5 the cut may not hold; BODY_HALF_DEPTH_MM bounds it
#: there. 4 mm (a diamond, before 2026-12-01) let the anatomic phantom family's sections run
#: into the arch (found bodies 55-59 mm deep against 28-31; Dice 0.6 against 0.80-0.94 now).
NECK_MM = 6.0
#: The marrow's fat fraction is read within this radius (mm) of the column: the 5 mm used
#: before read the fatty centre around the basivertebral vein on the real Dixon scan (0.44,
#: the rest of the body 0.23-0.35), and the section found was the body's fattier half.
MARROW_MM = 10.0
#: The section is looked for within these distances (mm) of the column front and back, and to
#: the sides: lumbar bodies are 30-38 mm deep and 40-50 mm wide (Panjabi et al. 1992, Spine
#: 17:299), and the column's point lies within a few mm of the centre. A 35 mm circle (before
#: 2026-12-01) let the section run through wide pedicles into the arch (anatomic phantom seed
#: 602, L3: 64 mm deep against 32; 40 mm now) and, at S1, into the sacral alae (57-69 mm wide
#: against 41-51; Dice 0.49-0.67, now 0.58-0.77). Depth 25 and 22 mm were tried, width 30 mm
#: only (22 / 30: real Dixon bodies Dice 0.82 / 0.77 / 0.81 against its label; anatomic seeds
#: 500-503 and 600-603 and `lumbar-twin phantom` the same or better at every body).
BODY_HALF_DEPTH_MM, BODY_HALF_WIDTH_MM = 22.0, 30.0
#: Where the back muscles' posterior surface is looked for, beside the spinous process (mm
#: from the midline), and the skin not taken for it (mm inside the outline).
BACK_MUSCLE_MM, SKIN_MM = (15.0, 45.0), 5.0


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
    x, y, shift = _column(smooth, soft, _back_surface(smooth, soft, body, spacing_mm), spacing_mm, source)
    column = _follow_spine(smooth, x, y, shift, spacing_mm)
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


def _back_surface(smooth, soft, body, spacing_mm) -> np.ndarray:
    """(n slices,) voxel y of the back muscles' posterior surface on each slice: the first lean
    soft tissue (fat map under 0.5) SKIN_MM or more inside the outline, median over the columns
    BACK_MUSCLE_MM beside the midline, median-filtered over five slices."""
    sx, sy, _ = spacing_mm
    nx, ny, nz = smooth.shape
    xs = np.nonzero(soft.any(axis=(1, 2)))[0]
    lateral = np.abs(np.arange(nx) - 0.5 * (xs.min() + xs.max())) * sx
    columns = (lateral >= BACK_MUSCLE_MM[0]) & (lateral <= BACK_MUSCLE_MM[1])
    gy = np.arange(ny)[None, :]
    surface = np.full(nz, np.nan)
    for k in range(nz):
        inside = body[columns, :, k]
        if not inside.any():
            continue
        outline = np.where(inside.any(axis=1), inside.argmax(axis=1), ny)[:, None]
        lean = soft[columns, :, k] & (smooth[columns, :, k] < 0.5) & (gy > outline + SKIN_MM / sy)
        first = lean.argmax(axis=1)[lean.any(axis=1)]
        if first.size:
            surface[k] = np.median(first)
    found = np.isfinite(surface)
    if not found.any():
        return np.zeros(nz)
    surface = np.interp(np.arange(nz), np.nonzero(found)[0], surface[found])
    return ndimage.median_filter(surface, size=5, mode="mirror")


def _column(smooth, soft, back, spacing_mm, source) -> tuple[float, float, np.ndarray]:
    """(x, y, shift): the voxel whose fat-map profile, on slices shifted front to back by
    `shift` (n slices,) so that the back muscles' surface `back` lies at one depth, alternates at
    25-60 mm periods most purely and most in step with its neighbours to either side and in
    front and behind (COHERENCE_MM). On slice k it lies at (x, y + shift[k])."""
    sx, sy, sz = spacing_mm
    nx, ny, nz = smooth.shape
    shift = back - np.median(back)
    straight = np.stack([ndimage.shift(smooth[:, :, k], (0, -shift[k]), order=1, mode="nearest")
                         for k in range(nz)], axis=2)
    soft = np.stack([ndimage.shift(soft[:, :, k].astype(np.float32), (0, -shift[k]), order=0, mode="nearest") > 0.5
                     for k in range(nz)], axis=2)
    profiles = straight - straight.mean(axis=2, keepdims=True)
    power = np.abs(np.fft.rfft(profiles, axis=2)) ** 2
    freq = np.fft.rfftfreq(nz, d=sz)
    with np.errstate(divide="ignore"):
        period = np.where(freq > 0, 1.0 / np.maximum(freq, 1e-12), np.inf)
    band = (period >= PERIOD_MM[0]) & (period <= PERIOD_MM[1])
    in_band = power[:, :, band].sum(axis=2) if band.any() else np.zeros((nx, ny))
    # periodic, not a single bump (a fat patch): the band's share of all variation
    share = in_band / np.maximum(power[:, :, 1:].sum(axis=2), 1e-12)
    # in step across the body's width and depth
    unit = profiles / np.maximum(profiles.std(axis=2, keepdims=True), 1e-6)
    d, e = max(1, int(round(COHERENCE_MM[0] / sx))), max(1, int(round(COHERENCE_MM[1] / sy)))
    across, along = np.zeros((nx, ny)), np.zeros((nx, ny))
    across[d:nx - d] = (unit[:nx - 2 * d] * unit[2 * d:]).mean(axis=2)
    along[:, e:ny - e] = (unit[:, :ny - 2 * e] * unit[:, 2 * e:]).mean(axis=2)
    coherence = np.clip(across, 0.0, None) * np.clip(along, 0.0, None)
    score = share**2 * coherence * (in_band > 0.02 * in_band.max())
    xs = np.nonzero(soft.any(axis=(1, 2)))[0]
    inside = ndimage.binary_erosion(soft.mean(axis=2) >= 0.9, iterations=max(1, int(round(3.0 / sx))))
    midline = 0.5 * (xs.min() + xs.max())
    gx = np.arange(nx)[:, None]
    score = ndimage.uniform_filter(score, size=(max(1, int(10 / sx)), max(1, int(10 / sy))))
    score = np.where(inside & (np.abs(gx - midline) * sx < SEARCH_MM), score, 0.0)
    if score.max() <= 0:
        raise InputError(source, "no vertebral column found (no marrow-disc alternation near the midline)")
    x, y = np.unravel_index(np.argmax(score), score.shape)
    return float(x), float(y), shift


def _section_centre(smooth_k, point, gx, gy, spacing_mm) -> np.ndarray | None:
    """Centre (voxel x, y) of the low-variance soft tissue around `point` on one slice of the
    smoothed fat map (marrow or disc section), 25 mm at most away; None if it is a sliver."""
    sx, sy, _ = spacing_mm
    nx, ny = smooth_k.shape
    cx, cy = int(np.clip(round(point[0]), 0, nx - 1)), int(np.clip(round(point[1]), 0, ny - 1))
    near = ((gx - point[0]) * sx) ** 2 + ((gy - point[1]) * sy) ** 2 < 25.0**2
    section = near & (np.abs(smooth_k - smooth_k[cx, cy]) < 0.12)
    lab, _ = ndimage.label(section)
    keep = lab == lab[cx, cy] if lab[cx, cy] else section
    return np.array([gx[keep].mean(), gy[keep].mean()]) if keep.sum() > 10 else None


def _follow_spine(smooth, x, y, shift, spacing_mm) -> np.ndarray:
    """(n slices, 2) the column's point on each slice: (x, y + b + a * shift), where a (0..1) is
    how far the spine follows the back's surface front to back and b (voxels) the offset to the
    sections' centre, fitted to the marrow and disc sections found around (x, y + shift).
    Lordosis carries both (a near 1); where the back muscles thin towards the sacrum or differ
    in thickness between levels, the surface moves and the spine does not (a near 0)."""
    nx, ny, nz = smooth.shape
    gx, gy = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    moved = []
    for k in range(nz):
        centre = _section_centre(smooth[:, :, k], (x, y + shift[k]), gx, gy, spacing_mm)
        if centre is not None:
            moved.append((shift[k], centre[1] - y))
    a, b = 1.0, 0.0
    if len(moved) >= 3:
        s, m = np.array(moved).T
        if np.ptp(s) > 0:
            a = float(np.clip(np.polyfit(s, m, 1)[0], 0.0, 1.0))
        b = float(np.median(m - a * s))  # and onto the sections' centre front to back
    return np.stack([np.full(nz, x), y + b + a * shift], axis=1)


def _track(smooth, ff, total, column, spacing_mm, soft_signal):
    """The column's centre on each slice (following the marrow and disc section from the
    column's point on it, `column`: (n slices, 2)) and the fat-map profile along it. Only soft
    tissue counts: where bone fills the disk (sacrum), the fat map means nothing on a single
    contrast, and the slice is given the marrow's level."""
    sx, sy, _ = spacing_mm
    nx, ny, nz = ff.shape
    soft = total > soft_signal
    gx, gy = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    track = np.zeros((nz, 2))
    profile = np.zeros(nz)
    for k in range(nz):
        point = column[k]
        centre = _section_centre(smooth[:, :, k], point, gx, gy, spacing_mm)
        centre = point if centre is None else centre
        track[k] = 0.5 * (centre + point)  # damped: half-way to the column's point
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
    """Vertebra label map: each body's marrow section, from its middle slice, over its slices,
    moved with the column's track."""
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
            # moved with the column (lordosis tilts the body: its section moves front to back)
            moved = ndimage.shift(section.astype(np.uint8), track[k] - track[mid], order=0, cval=0) > 0
            out[:, :, k][moved] = DEFAULT_VERTEBRA_LABELS[name]
    return out


def _marrow_section(ff, total, body, centre, gx, gy, spacing_mm):
    """The vertebral body's section on a slice: marrow-like tissue connected to the column,
    within BODY_HALF_WIDTH_MM of it to the sides and BODY_HALF_DEPTH_MM front and back."""
    sx, sy, _ = spacing_mm
    near = ((gx - centre[0]) * sx / BODY_HALF_WIDTH_MM) ** 2 + ((gy - centre[1]) * sy / BODY_HALF_DEPTH_MM) ** 2 < 1.0
    smooth = ndimage.gaussian_filter(ff, sigma=(1.0, 1.0))
    middle = ((gx - centre[0]) * sx) ** 2 + ((gy - centre[1]) * sy) ** 2 < MARROW_MM**2
    marrow = float(np.median(smooth[middle]))
    # between the lean tissue around (muscle, disc) and the marrow, and below the fat
    lower = 0.6 * marrow
    upper = marrow + 0.5 * (1.0 - marrow)
    candidate = near & body & (smooth > lower) & (smooth < upper) & (total > 0.3 * np.median(total[body]))
    # cut necks narrower than 2 x NECK_MM (pedicles, into the canal, along a psoas edge): erode,
    # keep the part at the column, grow it back inside the candidate
    radius = max(1, int(round(NECK_MM / min(sx, sy))))  # the window searched around the column
    disk = disk_footprint(NECK_MM, sx, sy)
    core = ndimage.binary_erosion(candidate, disk)
    lab, _ = ndimage.label(core)
    cx, cy = int(round(centre[0])), int(round(centre[1]))
    window = lab[max(0, cx - radius):cx + radius + 1, max(0, cy - radius):cy + radius + 1]
    values = window[window > 0]
    if values.size == 0:
        return None
    kept = lab == np.bincount(values).argmax()
    return ndimage.binary_dilation(kept, disk) & candidate

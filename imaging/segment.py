"""Built-in segmentation of psoas, quadratus lumborum, erector spinae and multifidus (left and
right) on Dixon water/fat images, with no learned weights.

1. Fat fraction F/(F+W) and total signal, lightly smoothed in-plane; the body; the signal level
   of lean tissue (median over low-fat body voxels).
2. Candidate muscle: lean (fat fraction < 0.5; < 0.65 behind the vertebral bodies, where
   atrophied paraspinals grow fatty) and bright enough to be soft tissue (not bone
   or air), outside the vertebral bodies and discs (from the vertebra labels) and the spinal
   canal (a strip behind each vertebral body on the midline); holes from intramuscular fat are
   filled slice by slice.
3. Seeds, on clearly lean candidate tissue (< 0.5), from anatomical order relative to each
   vertebral body (centre, half-width, half-depth from its label): behind the canal,
   multifidus is the medial end and erector spinae the lateral end of the paraspinal
   complex; beside the body, psoas is the medial end and
   quadratus lumborum the lateral end of the psoas complex.
4. A 3-D marker watershed on the fat-fraction map grows the seeds through the candidate tissue;
   fascial planes, which carry fat, become the borders between touching muscles, and lean
   tissue not reached from a seed (bowel, kidney) stays unlabelled.
5. Borders move to where a voxel is half muscle, unmixed on the unsmoothed water and fat
   (imaging.partial_volume).
6. Fat patches at a muscle's edge are taken back: by a closing of its outline slice by slice,
   and across slices where the outline runs on above and below the patch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.segmentation import watershed

from imaging.labels import MUSCLE_LABELS
from imaging.levels import vertebra_slices
from imaging.partial_volume import FAT_REFERENCE_REACH, unmix
from lumbar_twin.errors import InputError

LEAN_FAT_FRACTION = 0.5
#: Behind the vertebral bodies a muscle may be fattier and still be found: a severely atrophied
#: multifidus near 0.5 fat broke up at 0.5. Only there: in front, psoas at 0.65 joined the
#: viscera through the thin retroperitoneal fat.
PARASPINAL_FAT_FRACTION = 0.65
#: Soft tissue is at least this share of the lean-muscle signal (bone and air are far below).
MIN_SIGNAL_SHARE = 0.45



@dataclass(frozen=True)
class VertebraGeometry:
    centre: np.ndarray  # voxel (x, y) of the body's centre on its mid slice
    half_width_mm: float
    half_depth_mm: float
    mid_slice: int


def segment(water: np.ndarray, fat: np.ndarray, vertebrae: np.ndarray, convention: dict[str, int],
            spacing_mm: tuple[float, float, float]) -> np.ndarray:
    """Muscle label map (values of imaging.labels.MUSCLE_LABELS) on the canonical grid."""
    sx, sy, sz = spacing_mm
    total, ff = smoothed_fat_fraction(water, fat)
    body = body_mask(total)
    lean_level = float(np.median(total[body & (ff < 0.2)])) if np.any(body & (ff < 0.2)) else float(total[body].mean())

    geometry = vertebra_geometry(vertebrae, convention, spacing_mm)
    if len(geometry) < 2:
        raise InputError(None, "fewer than two lumbar vertebrae found: cannot place the muscles", field="vertebrae")
    spine = _spine_exclusion(vertebrae, geometry, convention, spacing_mm)
    lean_enough = np.where(_behind_bodies(vertebrae.shape, geometry, spacing_mm), PARASPINAL_FAT_FRACTION,
                           LEAN_FAT_FRACTION)
    candidate = body & (ff < lean_enough) & (total > MIN_SIGNAL_SHARE * lean_level) & ~spine
    candidate = np.stack([ndimage.binary_fill_holes(candidate[:, :, k]) for k in range(candidate.shape[2])], -1)
    candidate &= ~spine

    # seeds on clearly lean tissue: the fatter paraspinal candidate can join a fascial plane
    # to a muscle and move where its medial or lateral end lies
    markers = _seeds(candidate & (ff < LEAN_FAT_FRACTION), spine, geometry, spacing_mm)
    labels = watershed(ff, markers=markers, mask=candidate).astype(np.uint8)
    soft = body & ~spine & (total > MIN_SIGNAL_SHARE * lean_level)
    labels = _partial_volume_borders(labels, water, fat, soft)
    labels = _close_outlines(labels, ff, spine, body, spacing_mm)
    return _bridge_fat_patches(labels, ff, spine, body, spacing_mm)


def smoothed_fat_fraction(water: np.ndarray, fat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(total signal, fat fraction F / (F + W)), both lightly smoothed in-plane (sigma 0.7
    voxel) against noise; 1.0 where there is no signal."""
    total = ndimage.gaussian_filter(water + fat, sigma=(0.7, 0.7, 0))
    fat_s = ndimage.gaussian_filter(fat, sigma=(0.7, 0.7, 0))
    return total, np.where(total > 1e-6, fat_s / np.maximum(total, 1e-6), 1.0)


def body_mask(total: np.ndarray) -> np.ndarray:
    """Per slice, the largest connected region brighter than a fifth of the 99th percentile, filled."""
    threshold = 0.2 * np.percentile(total, 99)
    mask = total > threshold
    out = np.zeros_like(mask)
    for k in range(mask.shape[2]):
        filled = ndimage.binary_fill_holes(mask[:, :, k])
        lab, n = ndimage.label(filled)
        if n:
            sizes = ndimage.sum(filled, lab, range(1, n + 1))
            out[:, :, k] = lab == (1 + int(np.argmax(sizes)))
    return out


def vertebra_geometry(vertebrae, convention, spacing_mm) -> dict[str, VertebraGeometry]:
    """Name ("L1" ..) -> each labelled vertebral body's section on its middle slice: centre
    (voxel x, y), half width and half depth (mm), middle slice index. vertebrae: (nx, ny, nz)
    canonical label map in `convention`; spacing_mm: voxel size (x, y, z)."""
    sx, sy, _ = spacing_mm
    out = {}
    for name, mask, slices in vertebra_slices(vertebrae, convention):
        mid = int(round(0.5 * (slices.min() + slices.max())))
        section = mask[:, :, mid] if mask[:, :, mid].any() else mask[:, :, slices[len(slices) // 2]]
        xs, ys = np.nonzero(section)
        # width across the body's middle third of depth: the pedicles leave its back corners
        middle = np.abs(ys - ys.mean()) <= (ys.max() - ys.min()) / 6.0
        out[name] = VertebraGeometry(
            centre=np.array([xs.mean(), ys.mean()]),
            half_width_mm=0.5 * (xs[middle].max() - xs[middle].min() + 1) * sx,
            half_depth_mm=0.5 * (ys.max() - ys.min() + 1) * sy,
            mid_slice=mid,
        )
    return out


def _spine_exclusion(vertebrae, geometry, convention, spacing_mm) -> np.ndarray:
    """Vertebral bodies, the discs between them, the canal strip behind them and the midline in
    front of them."""
    sx, sy, _ = spacing_mm
    nx, ny, nz = vertebrae.shape
    out = np.zeros(vertebrae.shape, bool)
    labelled = np.isin(vertebrae, [convention[n] for n in geometry])
    # Every slice borrows the footprint of the nearest labelled slice (discs have no label).
    has = np.nonzero(labelled.any(axis=(0, 1)))[0]
    gx, gy = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    for k, g in enumerate(_nearest_vertebra(geometry, nz)):
        nearest = has[np.argmin(np.abs(has - k))]
        out[:, :, k] = ndimage.binary_dilation(labelled[:, :, nearest], iterations=1)
        # canal: on the midline, from the body's back to about 1.3 half-depths behind it
        cx, cy = g.centre
        back = cy - g.half_depth_mm / sy
        strip = (np.abs(gx - cx) * sx < 0.55 * g.half_depth_mm) & (gy <= back) & \
            (gy >= back - 1.3 * g.half_depth_mm / sy)
        # prevertebral midline (great vessels, bowel): no muscle crosses the midline in front of
        # the body, and lean tissue there would join the two psoas and the viscera
        front = (np.abs(gx - cx) * sx < 0.5 * g.half_width_mm) & (gy >= cy)
        out[:, :, k] |= strip | front
    return out


def _behind_bodies(shape, geometry, spacing_mm) -> np.ndarray:
    """Voxels behind the back wall of the nearest vertebral body (the paraspinal compartment)."""
    out = np.zeros(shape, bool)
    for k, g in enumerate(_nearest_vertebra(geometry, shape[2])):
        back = int(np.floor(g.centre[1] - g.half_depth_mm / spacing_mm[1]))  # canonical axis 1: anterior
        out[:, :max(0, back), k] = True
    return out


def _nearest_vertebra(geometry, nz: int) -> list[VertebraGeometry]:
    """For every slice, the vertebra whose mid slice is nearest."""
    names = list(geometry)
    centres_z = np.array([geometry[n].mid_slice for n in names])
    return [geometry[names[int(np.argmin(np.abs(centres_z - k)))]] for k in range(nz)]


def _seeds(candidate, spine, geometry, spacing_mm) -> np.ndarray:
    """Seeds from where each muscle sits relative to the spine and to its neighbours, not from
    fixed distances (muscle size varies): on each vertebra's mid slice and side, the lean tissue
    behind the canal is the paraspinal complex - multifidus its most medial part, erector
    spinae its most lateral; psoas is the lean tissue against the side of the vertebral body;
    quadratus lumborum the most lateral lean tissue at the level of the body (seeded at L2 and
    L3 only, where it is reliably present).""" 
    sx, sy, _ = spacing_mm
    nx, ny, _ = candidate.shape
    markers = np.zeros(candidate.shape, np.int32)
    gx, gy = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    for name, g in geometry.items():
        if name == "S1":
            continue
        k = g.mid_slice
        section = candidate[:, :, k]
        lateral_mm = (gx - g.centre[0]) * sx  # + to the right (canonical axis 0)
        ahead_mm = (gy - g.centre[1]) * sy  # + anterior
        for side, sign in (("left", -1.0), ("right", 1.0)):
            away = sign * lateral_mm  # distance from the midline towards this side
            behind = section & (away > 0) & (ahead_mm < -1.8 * g.half_depth_mm) & (away < 6 * g.half_width_mm)
            beside = section & (away > 0.6 * g.half_width_mm) & (away < 5 * g.half_width_mm) & \
                (ahead_mm > -1.6 * g.half_depth_mm) & (ahead_mm < 0)  # behind the body's centre
            _extreme_seeds(markers[:, :, k], behind, away, ("multifidus", side), ("erector_spinae", side),
                           medial_within_mm=0.9 * g.half_width_mm)  # multifidus hugs the spinous process
            if name in ("L2", "L3"):
                _extreme_seeds(markers[:, :, k], beside, away, None, ("quadratus_lumborum", side))
            if name != "L1":  # psoas is small and variable at L1
                against = ndimage.binary_dilation(spine[:, :, k], iterations=max(1, int(round(6.0 / sx))))
                psoas = ndimage.binary_opening(section & against & (away > 0.8 * g.half_width_mm)
                                               & (np.abs(ahead_mm) < 0.8 * g.half_depth_mm))
                if psoas.sum() >= 2:
                    markers[:, :, k][psoas & (markers[:, :, k] == 0)] = MUSCLE_LABELS[("psoas", side)]
    return markers


def _extreme_seeds(markers, region, away, medial, lateral, band_mm: float = 4.0,
                   min_area_voxels: int = 6, medial_within_mm: float = np.inf) -> None:
    """Seed `medial` on the region's part nearest the midline (if within `medial_within_mm`
    of it) and `lateral` on its farthest part, ignoring specks."""
    lab, n = ndimage.label(region)
    if n == 0:
        return
    sizes = ndimage.sum(region, lab, range(1, n + 1))
    region = np.isin(lab, 1 + np.nonzero(sizes >= min_area_voxels)[0])
    if not region.any():
        return
    reach = away[region]
    for key, target in ((medial, reach.min()), (lateral, reach.max())):
        if key is None or (key is medial and target > medial_within_mm):
            continue
        seed = region & (np.abs(away - target) <= band_mm)
        if seed.sum() >= 2:
            markers[seed] = MUSCLE_LABELS[key]


def _partial_volume_borders(labels, water, fat, soft, claimable=None) -> np.ndarray:
    """Move each muscle's border to where a voxel is half muscle (imaging.partial_volume).

    The watershed runs on a smoothed map, which spreads a muscle into the fat and the bone
    around it and a fatty muscle's border out of it: per slice, a border voxel that is less
    than half muscle leaves, and a free soft-tissue voxel next to the muscle that is more than
    half muscle joins (if given claimable, a uint16 map with bit label - 1 set where that muscle
    may join). Water and fat are the unsmoothed images.
    """
    out = labels.copy()
    for k, value, box in _label_boxes(labels, margin=FAT_REFERENCE_REACH + 1):
        section = out[box + (k,)]
        mask = section == value
        w, f = water[box + (k,)], fat[box + (k,)]
        shares = unmix(w, f, mask, section == 0)
        if shares is None:
            continue
        share = shares.muscle
        edge = mask & ~ndimage.binary_erosion(ndimage.binary_fill_holes(mask))  # the outline, not holes
        ring = ndimage.binary_dilation(mask) & (section == 0) & soft[box + (k,)]
        if claimable is not None:
            ring &= (claimable[box + (k,)] >> (value - 1)) & 1 == 1
        section[edge & (share < 0.5)] = 0
        section[ring & (share >= 0.5)] = value
    return out


def _close_outlines(labels, ff, spine, body, spacing_mm) -> np.ndarray:
    """Take back fat patches at each muscle's edge: per slice, a closing of its outline,
    claiming only voxels no other muscle holds and that are not spine or outside the body."""
    radius_mm = 6.0
    sx, sy, _ = spacing_mm
    rx, ry = max(1, int(round(radius_mm / sx))), max(1, int(round(radius_mm / sy)))
    yy, xx = np.ogrid[-rx:rx + 1, -ry:ry + 1]
    disk = (yy / rx) ** 2 + (xx / ry) ** 2 <= 1
    out = labels.copy()
    for k, value, box in _label_boxes(labels, margin=max(rx, ry) + 1):
        mask = labels[box + (k,)] == value
        closed = ndimage.binary_fill_holes(ndimage.binary_closing(mask, structure=disk))
        target = out[box + (k,)]
        grab = closed & (target == 0) & ~spine[box + (k,)] & body[box + (k,)] & \
            (ff[box + (k,)] >= LEAN_FAT_FRACTION)
        target[grab] = value
    return out


def _bridge_fat_patches(labels, ff, spine, body, spacing_mm, reach_mm: float = 20.0,
                        min_contact: float = 0.0) -> np.ndarray:
    """Take back fat patches that reach a muscle's edge over a few slices: a fatty free voxel
    joins a muscle when the muscle holds that position on a slice above and on a slice below
    (within `reach_mm`), and it touches the muscle on its own slice. Fatty infiltration comes in
    patches a centimetre or two long; the outline around it runs on above and below. A patch
    joins only if the muscle holds at least `min_contact` of the ring of voxels around it on
    its slice (a notch in the outline, not fat lying beside it)."""
    reach = max(1, int(round(reach_mm / spacing_mm[2])))
    out = labels.copy()
    nz = labels.shape[2]
    fatty_free = body & ~spine & (ff >= LEAN_FAT_FRACTION)
    for value in MUSCLE_LABELS.values():
        mask = labels == value
        if not mask.any():
            continue
        box = ndimage.find_objects(mask.astype(np.uint8))[0][:2]
        for k in range(1, nz - 1):
            here = mask[box + (k,)]
            if not here.any():
                continue
            above = mask[box + (slice(k + 1, min(nz, k + 1 + reach)),)].any(axis=2)
            below = mask[box + (slice(max(0, k - reach), k),)].any(axis=2)
            grab = above & below & ~here & fatty_free[box + (k,)] & (out[box + (k,)] == 0)
            if not grab.any():
                continue
            parts, _ = ndimage.label(grab)
            touching = np.unique(parts[ndimage.binary_dilation(here) & grab])
            for part in touching[touching > 0]:
                patch = parts == part
                ring = ndimage.binary_dilation(patch) & ~patch
                if (ring & here).sum() >= min_contact * ring.sum():
                    out[box + (k,)][patch] = value
    return out


def _label_boxes(labels, margin: int):
    """(slice index, label, in-plane box padded by `margin`) for every label on every slice:
    morphology on a muscle's own neighbourhood instead of the whole slice."""
    nx, ny, _ = labels.shape
    for k in range(labels.shape[2]):
        for index, found in enumerate(ndimage.find_objects(labels[:, :, k])):
            if found is None:
                continue
            box = tuple(slice(max(0, f.start - margin), min(n, f.stop + margin)) for f, n in zip(found, (nx, ny)))
            yield k, index + 1, box

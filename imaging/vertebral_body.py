"""The vertebral body out of a vertebra label map that may hold the whole vertebra.

Tools label vertebrae differently: TotalSegmentator's `total_mr` and our phantoms label the
body; SPINEPS instance masks, TotalSegmentator's `vertebrae_mr` (trained on SPIDER: van der
Graaf et al. 2024, Sci Data, doi 10.1038/s41597-024-03090-w) and its CT `total` task label
the whole vertebra, with pedicles, laminae, and transverse, articular and spinous processes,
and the sacrum with its alae. Every frame the segmenters place (back wall, body width and
depth, the canal behind) is the body's, so the rest goes first.

How: on an axial section the body is far thicker than any posterior element. Its largest
inscribed disc has a radius of 14-19 mm (adult lumbar bodies 40-50 mm wide, 30-38 mm deep:
Zhou et al. 2000, Eur Spine J 9:242, Table 2), a pedicle's at most about 9 mm (transverse
pedicle width 7-18 mm, L1 to L5: Zindrick et al. 1987, Spine 12:160), laminae and processes
less. A morphological opening with a disc of BODY_CORE_SHARE of the vertebra's largest
inscribed radius keeps the body's core and drops the rest; the core's back edge is the body's
back wall, and all posterior elements lie behind it (they leave the body through the pedicles
at its posterolateral corners). So each section keeps what lies in front of its core's back
wall (or the nearest core's, on a section too thin to have one: an endplate, or posterior
elements beside a disc) and, where it has a core, within the core's width (not the transverse
processes' roots). The sacral alae lie beside the S1 body, not behind it: S1 also keeps
only the width of L5's body, and a whole-sacrum label only one body height. A body-only map
comes back unchanged (but for a corner tip sharper than the opening's disc).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from imaging.compact import opening

#: Opening radius as a share of the vertebra's largest inscribed radius: 0.6 of 14-19 mm is
#: 8-11 mm, over a pedicle's half-width (3.5-9 mm) and under the body's (Zhou 2000; Zindrick 1987).
BODY_CORE_SHARE = 0.6
#: Label up to this far behind the core's back edge, or beyond its sides, is still body: the
#: opening rounds the body's posterolateral corners by a few mm, its sides hardly (their radius
#: of curvature, about half the body's depth, exceeds the disc's). Pedicles, laminae and the
#: transverse processes' roots lie further out.
BEHIND_CORE_MM, BESIDE_CORE_MM = 1.0, 0.0
#: The S1 body's half width over L5's: the S1 endplate is about as wide as L5's lower one
#: (Zhou et al. 2000, Table 2); beyond lie the alae.
SACRUM_WIDTH_SHARE = 1.15
#: S1 keeps the slices within L5's body height (its slices with a core) and this many more below
#: its highest core: a whole-sacrum label (SPINEPS) runs on to S5, and a body-only S1 label's
#: lowest slices cut its endplate thinly.
SACRUM_EXTRA_SLICES = 2


def vertebral_bodies(vertebrae: np.ndarray, convention: dict[str, int], spacing_mm) -> np.ndarray:
    """Vertebral bodies only. vertebrae: (nx, ny, nz) integer label map on a canonical (RAS)
    grid; convention: vertebra name ("L1" .. "S1") -> its value (other values pass through
    unchanged); spacing_mm: voxel size (x, y, z) in mm. Returns a map of the same shape and
    dtype where each vertebra is kept only on its body."""
    sx, sy, _ = spacing_mm
    out = vertebrae.copy()
    l5 = None  # L5 body's centre (voxel x), half width (mm) and height (slices with a core)
    for name in ("L1", "L2", "L3", "L4", "L5", "S1"):
        value = convention.get(name)
        found = ndimage.find_objects((vertebrae == value).astype(np.int8)) if value is not None else None
        if not found or found[0] is None:
            continue
        box = (*found[0][:2], slice(None))  # the vertebra's in-plane box: openings cost its area only
        mask = vertebrae[box] == value
        body = mask.copy()
        if name == "S1" and l5 is not None:  # the alae: beside L5's body, as wide as it
            gx = np.arange(box[0].start, box[0].stop)
            body[np.abs(gx - l5[0]) * sx > SACRUM_WIDTH_SHARE * l5[1]] = False
        body, cored = _body(body, sx, sy)
        if name == "S1" and l5 is not None and cored.size:  # the sacrum below S1: one body high
            body[:, :, :max(0, int(cored.max()) - l5[2] - SACRUM_EXTRA_SLICES)] = False
        if name == "L5" and cored.size:
            lo, hi = _main_core_width(body, cored)
            l5 = (box[0].start + 0.5 * (lo + hi), 0.5 * (hi - lo + 1) * sx, int(cored.max() - cored.min()) + 1)
        out[box][mask & ~body] = 0
    return out


def _body(mask: np.ndarray, sx: float, sy: float) -> tuple[np.ndarray, np.ndarray]:
    """One vertebra's mask (nx, ny, nz) -> the part in front of its body's back wall (each
    section's own core's, or the nearest core's on a section without one) and, on a section
    with a core, within its and the largest core's width; and the slices with a core."""
    present = np.nonzero(mask.any(axis=(0, 1)))[0]
    if not present.size:  # nothing left (an S1 value wholly beside L5's body)
        return mask, present
    radius = max(float(ndimage.distance_transform_edt(mask[:, :, k], sampling=(sx, sy)).max()) for k in present)
    frames = {}  # slice -> (back y, lowest x, highest x, area) of its core
    for k in present:
        core = _largest(opening(mask[:, :, k], (sx, sy), BODY_CORE_SHARE * radius))
        if core.any():
            xs, ys = np.nonzero(core)
            frames[k] = (ys.min(), xs.min(), xs.max(), xs.size)  # canonical axis 1: anterior
    keep = mask.copy()
    if not frames:  # no section thick enough to be a body: leave the label as it is
        return keep, np.array([], int)
    cored = np.array(sorted(frames))
    main = frames[max(frames, key=lambda k: frames[k][3])]
    reach_x, reach_y = BESIDE_CORE_MM / sx + 1.0, BEHIND_CORE_MM / sy  # + a voxel: the disc is drawn on voxels
    gx = np.arange(mask.shape[0])
    for k in present:
        back = frames[int(cored[np.argmin(np.abs(cored - k))])][0]
        keep[:, :max(0, int(np.floor(back - reach_y))), k] = False
        if k in frames:  # the transverse processes leave at the pedicles' height, where the body is whole
            lo, hi = min(frames[k][1], main[1]), max(frames[k][2], main[2])
            keep[(gx < lo - reach_x) | (gx > hi + reach_x), :, k] = False
    return keep, cored


def _main_core_width(body: np.ndarray, cored: np.ndarray) -> tuple[int, int]:
    """Lowest and highest voxel x of the body on its largest cored section."""
    k = int(cored[np.argmax([body[:, :, c].sum() for c in cored])])
    xs = np.nonzero(body[:, :, k].any(axis=1))[0]
    return int(xs.min()), int(xs.max())


def _largest(mask: np.ndarray) -> np.ndarray:
    parts, n = ndimage.label(mask)
    if n <= 1:
        return mask
    return parts == 1 + int(np.argmax(ndimage.sum_labels(mask, parts, index=np.arange(1, n + 1))))

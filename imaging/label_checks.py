"""Checks of an imported muscle label map against the anatomy every lumbar spine shares.

Released segmentation models have shipped with left and right swapped, and class tables change
between releases; a label in the wrong place puts one muscle's numbers into another's strength.
Each check uses world coordinates (the image's affine, RAS+: x to the patient's left-to-right,
y posterior-to-anterior) and the vertebrae of the same image, and stops the run when it fails:

- side: a `*_left` label lies on the patient's left of the spine's midline (the vertebrae's
  centre on each slice), a `*_right` label on the right. Most of a label's voxels on the other
  side is a swap, not a segmentation error (a muscle never crosses the midline: the spinous
  processes and the vertebral bodies part the sides).
- position: the back muscles (erector spinae, multifidus, autochthon) lie behind the centre of
  the vertebrae (the laminae, spinous processes and canal lie behind the body's centre, and the
  back muscles behind them); psoas and iliopsoas lie beside the vertebral bodies, in front of
  the laminae (no further back than LAMINA_MM behind the vertebrae's posterior edge: the canal's
  depth) and in front of the back muscles of their side; quadratus lumborum lies in front of the
  erector spinae of its side (Gray's Anatomy, 42nd ed., posterior abdominal wall).
"""
from __future__ import annotations

import numpy as np

from imaging.labels import ROW_LABELS
from lumbar_twin.errors import InputError

BACK = ("erector_spinae", "multifidus", "autochthon")
FRONT = ("psoas", "iliopsoas")
#: A label with more than this share of its voxels across the midline is on the wrong side.
WRONG_SIDE_SHARE = 0.5
#: The lumbar canal's sagittal depth, 15-18 mm (Eisenstein 1977, J Bone Joint Surg Br 59:173):
#: the laminae begin about this far behind the vertebral body's posterior wall. At its origin the
#: psoas lies beside the back of the body, so only a psoas behind this line is misplaced.
LAMINA_MM = 15.0


def check_imported_labels(labels: np.ndarray, vertebrae: np.ndarray, affine: np.ndarray, source: str,
                          file_values: dict[int, list[int]] | None = None) -> None:
    """Stop (InputError naming `source`) when a label lies on the wrong side or in the wrong
    place. `labels` in toolkit row values (imaging.labels.ROW_LABELS), `vertebrae` any nonzero
    vertebra map, both on the canonical grid of `affine`; `file_values` names the values the
    file itself used for each toolkit value, for the message."""
    file_values = file_values or {}
    midline, posterior_edge, centre_y = _spine_by_slice(vertebrae, affine)
    if not midline:
        return  # no vertebra on any labelled slice: nothing to check against
    where = {}
    for (muscle, side), value in ROW_LABELS.items():
        mask = labels == value
        slices = [k for k in midline if mask[:, :, k].any()]
        if not slices:
            continue
        x, y = _world_xy(mask, affine, slices)
        mid = np.concatenate([np.full(np.count_nonzero(mask[:, :, k]), midline[k]) for k in slices])
        wrong = np.mean(x > mid) if side == "left" else np.mean(x < mid)
        if wrong > WRONG_SIDE_SHARE:
            other = "right" if side == "left" else "left"
            values = "/".join(str(v) for v in file_values.get(value, [value]))
            raise InputError(source, f"the label {muscle}_{side} (value {values} in the file) lies on the "
                                     f"patient's {other} ({wrong:.0%} of its voxels across the spine's midline): "
                                     "left and right swapped in the label map or its convention?")
        where[(muscle, side)] = (y, slices)
    for (muscle, side), (y, slices) in where.items():
        name = f"{muscle}_{side}"
        if muscle in BACK and np.median(y) > np.median([centre_y[k] for k in slices]):
            raise InputError(source, f"the label {name} lies in front of the vertebrae's centre: a back muscle lies behind "
                                     "them (a label of another class, or a convention of another release?)")
        if muscle in FRONT and np.median(y) < np.median([posterior_edge[k] for k in slices]) - LAMINA_MM:
            raise InputError(source, f"the label {name} lies behind the vertebrae: the psoas lies beside the vertebral "
                                     "bodies, in front of the laminae (a label of another class, or a convention of "
                                     "another release?)")
        behind = {"psoas": BACK, "iliopsoas": BACK, "quadratus_lumborum": ("erector_spinae",)}.get(muscle, ())
        for back in behind:
            if (back, side) in where and np.median(y) <= np.median(where[(back, side)][0]):
                raise InputError(source, f"the label {name} lies behind {back}_{side}: it lies in front of it in every "
                                         "lumbar spine (labels swapped between classes?)")


def _spine_by_slice(vertebrae: np.ndarray, affine: np.ndarray):
    """Per slice with vertebra voxels: world x of their centre, world y of their posterior edge
    (5th percentile) and of their centre."""
    midline, posterior, centre = {}, {}, {}
    for k in range(vertebrae.shape[2]):
        mask = vertebrae[:, :, k] > 0
        if mask.sum() < 10:
            continue
        x, y = _world_xy(mask[:, :, None], affine, [k], offset=k)
        midline[k], posterior[k], centre[k] = float(np.median(x)), float(np.percentile(y, 5)), float(np.median(y))
    return midline, posterior, centre


def _world_xy(mask: np.ndarray, affine: np.ndarray, slices, offset: int = 0):
    xs, ys = [], []
    for k in slices:
        i, j = np.nonzero(mask[:, :, k - offset])
        world = affine[:3, :3] @ np.vstack([i, j, np.full(i.size, k)]) + affine[:3, 3:4]
        xs.append(world[0])
        ys.append(world[1])
    return np.concatenate(xs), np.concatenate(ys)

"""segment_anatomical._split_by_groove: the multifidus share of the two back muscles is held
within SPLIT_SHARE_BOUNDS of the template's share, moving the voxels furthest from (or nearest
to) the groove beside the spinous process; the union and a share within bounds are untouched."""
import numpy as np
import pytest

import imaging.segment_anatomical as sa
from imaging.labels import MUSCLE_LABELS

MF, ES = MUSCLE_LABELS[("multifidus", "right")], MUSCLE_LABELS[("erector_spinae", "right")]
SPACING = (1.0, 1.0, 4.0)


def one_slice(mf_columns: int):
    """A right-side block 60 mm wide and 40 mm deep behind the back wall (canonical: +x is the
    patient's right, +y anterior), multifidus its medial `mf_columns` mm."""
    labels = np.zeros((200, 200, 1), np.uint8)
    labels[101:161, 40:80, 0] = ES
    labels[101:101 + mf_columns, 40:80, 0] = MF
    frame = sa.SliceFrame(centre=np.array([100.0, 100.0]), back_y=85.0, half_width_mm=22.0, half_depth_mm=15.0,
                          body=np.zeros((200, 200), bool), level=2.0)
    return labels, [frame], np.array([100.0])


@pytest.mark.parametrize("mf_columns", [45, 3])
def test_a_share_outside_the_bounds_is_brought_to_the_bound_from_the_groove(mf_columns):
    labels, frames, midlines = one_slice(mf_columns)
    template = sa._template_multifidus_share(2.0)
    out = sa._split_by_groove(labels, frames, midlines, SPACING)
    assert np.array_equal(np.isin(out, [MF, ES]), np.isin(labels, [MF, ES]))  # union unchanged
    mass = np.isin(out, [MF, ES]).sum()
    lo, hi = sa.SPLIT_SHARE_BOUNDS
    bound = hi if mf_columns / 60 > hi * template else lo
    assert (out == MF).sum() / mass == pytest.approx(bound * template, abs=1.0 / mass)
    # the multifidus is what lies nearest the groove: every one of its voxels nearer than any
    # erector spinae voxel by the groove distance
    gx, gy = np.meshgrid(np.arange(200), np.arange(200), indexing="ij")
    distance = sa._groove_distance(np.isin(out[:, :, 0], [MF, ES]), gx - 100.0, (85.0 - gy) * 1.0)
    moved = out[:, :, 0] != labels[:, :, 0]
    assert moved.any()
    if bound == hi:  # multifidus voxels furthest from the groove became erector spinae
        assert distance[moved].min() >= distance[out[:, :, 0] == MF].max() - 1e-9
    else:  # erector spinae voxels nearest the groove became multifidus
        assert distance[moved].max() <= distance[out[:, :, 0] == ES].min() + 1e-9


def test_a_share_within_the_bounds_is_left_alone():
    template = sa._template_multifidus_share(2.0)
    labels, frames, midlines = one_slice(int(round(60 * template)))
    assert np.array_equal(sa._split_by_groove(labels, frames, midlines, SPACING), labels)

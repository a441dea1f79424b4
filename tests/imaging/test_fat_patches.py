"""Fat patches at a muscle's edge taken back across slices (imaging.segment._bridge_fat_patches),
on analytic shapes: a notch bitten into the outline is muscle with fatty infiltration; fat
lying beside the outline, where the muscle holds it on the slices above and below, is not."""
import numpy as np

from imaging.segment import _bridge_fat_patches
from imaging.segment_anatomical import BRIDGE_CONTACT_SHARE

SPACING = (1.0, 1.0, 4.0)  # mm; five slices each way lie within the step's 20 mm reach
VALUE = 5
X, Y = np.meshgrid(np.arange(48), np.arange(40), indexing="ij")
DISK = np.hypot(X - 20, Y - 20) < 10
SQUARE = (X >= 28) & (X < 38) & (Y >= 15) & (Y < 25)
NOTCH = np.hypot(X - 10, Y - 20) < 5


def volume(notch: bool, lobe: bool):
    """A disk muscle (radius 10 voxels) on seven slices, fat of fat fraction 0.9 around it. On
    the middle slice: with `notch`, a disk of radius 5 centred on the outline is fat and
    unlabelled; with `lobe`, the muscle on the other slices also holds a 10 x 10 square on its
    right side (the erector spinae widening above and below), which is fat on the middle slice."""
    labels = np.zeros((48, 40, 7), np.uint8)
    ff = np.full(labels.shape, 0.9, np.float32)
    for k in range(7):
        muscle = DISK | (SQUARE if lobe and k != 3 else False)
        if notch and k == 3:
            muscle = muscle & ~NOTCH
        labels[:, :, k][muscle] = VALUE
        ff[:, :, k][muscle] = 0.05
    body, spine = np.ones(labels.shape, bool), np.zeros(labels.shape, bool)
    return labels, ff, body, spine


def added(notch: bool, lobe: bool, min_contact: float) -> int:
    labels, ff, body, spine = volume(notch, lobe)
    out = _bridge_fat_patches(labels, ff, spine, body, SPACING, min_contact=min_contact)
    assert np.array_equal(out[:, :, [0, 1, 2, 4, 5, 6]], labels[:, :, [0, 1, 2, 4, 5, 6]])
    return int((out[:, :, 3] == VALUE).sum() - (labels[:, :, 3] == VALUE).sum())


def test_a_fatty_notch_in_the_outline_is_taken_back():
    assert added(notch=True, lobe=False, min_contact=BRIDGE_CONTACT_SHARE) == int((DISK & NOTCH).sum())


def test_fat_beside_the_outline_is_not_taken_where_the_muscle_is_wider_above_and_below():
    assert added(notch=False, lobe=True, min_contact=BRIDGE_CONTACT_SHARE) == 0
    # the ring test is what holds it back: without it all of the square's fat joins the muscle
    assert added(notch=False, lobe=True, min_contact=0.0) == int((SQUARE & ~DISK).sum())

"""imaging.compact on shapes with known answers: a disk, a square's corners, a disk with a
band, two disks joined by a neck."""
import numpy as np
from scipy import ndimage

from imaging.compact import appendages, opening

SPACING = (1.0, 1.0)


def _disk(shape, centre, radius):
    gx, gy = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    return (gx - centre[0]) ** 2 + (gy - centre[1]) ** 2 <= radius ** 2


def test_opening_keeps_a_disk_wider_than_the_opening():
    disk = _disk((80, 80), (40, 40), 15)
    opened = opening(disk, SPACING, 7.0)
    assert (disk ^ opened).sum() <= 0.02 * disk.sum()  # the voxelised outline's steps


def test_corners_of_a_square_are_rim_not_appendages():
    square = np.zeros((60, 60), bool)
    square[10:50, 10:50] = True
    core = opening(square, SPACING, 10.0)
    lost = square & ~core
    assert lost.any()  # the opening rounds the corners...
    assert not appendages(square, core, SPACING, 10.0).any()  # ...which lie within 0.42 r of it


def test_a_band_on_a_disk_is_an_appendage_and_the_disk_is_not():
    disk = _disk((100, 80), (30, 40), 12)
    band = np.zeros_like(disk)
    band[30:90, 38:43] = True  # 5 mm thick, 48 mm beyond the disk
    shape = disk | band
    core = opening(shape, SPACING, 6.0)
    hanging = appendages(shape, core, SPACING, 6.0)
    assert hanging[60:90, 38:43].all()
    assert not (hanging & disk).any()


def test_two_disks_through_a_neck_open_into_two_parts():
    shape = _disk((120, 60), (30, 30), 14) | _disk((120, 60), (85, 30), 12)
    shape[40:80, 28:33] = True  # a 5 mm neck
    _, n = ndimage.label(opening(shape, SPACING, 7.0))
    assert n == 2


def test_without_a_core_everything_hangs():
    thin = np.zeros((30, 30), bool)
    thin[5:25, 14:16] = True
    core = opening(thin, SPACING, 3.0)
    assert not core.any()
    assert (appendages(thin, core, SPACING, 3.0) == thin).all()

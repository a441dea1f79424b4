"""Disc levels from a vertebra label map, including vertebrae tilted so that axial slices cut
two of them (a steep sacral slope: the sacral promontory beside the back of L5)."""
import numpy as np
import pytest

from imaging.labels import DEFAULT_VERTEBRA_LABELS as CONVENTION
from imaging.levels import levels_from_vertebrae
from lumbar_twin.errors import InputError


def tilted_bodies(tilt_mm_per_voxel: float, gap: int = 4, height: int = 8, nz: int = 60) -> tuple[np.ndarray, list]:
    """Five bodies L2..S1 stacked along axis 2, each a 10 x 20 voxel plate whose z shifts by
    `tilt_mm_per_voxel` slices per voxel along axis 1 (a sagittal tilt); returns the map and the
    true disc centres (slice, at the plates' middle column)."""
    vol = np.zeros((12, 20, nz), np.uint8)
    discs = []
    bottom = 2.0
    for name in ("S1", "L5", "L4", "L3", "L2"):
        for y in range(20):
            shift = tilt_mm_per_voxel * (y - 10)
            lo, hi = int(round(bottom + shift)), int(round(bottom + shift + height))
            vol[1:11, y, max(lo, 0):max(hi, 0)] = CONVENTION[name]
        discs.append(bottom + height + gap / 2 - 0.5)
        bottom += height + gap
    return vol, discs[:-1][::-1]  # L2-L3 (between L2 and L3) ... L5-S1


@pytest.mark.parametrize("tilt", [0.0, 0.4, 0.8])
def test_disc_planes_even_when_tilted_bodies_overlap_in_z(tilt):
    vol, discs = tilted_bodies(tilt)
    levels = levels_from_vertebrae(vol, CONVENTION)
    assert levels.found == ("L2-L3", "L3-L4", "L4-L5", "L5-S1")
    for level, want in zip(levels.found, discs):
        assert levels.disc_slice[level] == pytest.approx(want, abs=1.0), (tilt, level)


def test_an_upper_vertebra_below_the_lower_one_is_an_error():
    vol, _ = tilted_bodies(0.0)
    swapped = vol.copy()
    swapped[vol == CONVENTION["L4"]] = CONVENTION["L5"]
    swapped[vol == CONVENTION["L5"]] = CONVENTION["L4"]
    with pytest.raises(InputError, match="L4 lies below L5"):
        levels_from_vertebrae(swapped, CONVENTION)

"""The anatomical segmenter's midline behind the canal is the back's mirror axis
(imaging.segment_anatomical._symmetry_midlines), checked on images with a known axis."""
import numpy as np
from scipy import ndimage

from imaging.segment_anatomical import SliceFrame, _symmetry_midlines

SPACING = (1.0, 1.0, 4.0)


def mirror_back(axis_x: float, shape=(200, 160, 7), seed: int = 0):
    """(water, total, frames): two paraspinal muscles and a dark spinous process mirror-symmetric
    about x = axis_x behind a vertebral body whose own centre sits 6 mm to the side (as on the
    real scan, where the body's midline and the spinous processes differ by a few mm)."""
    rng = np.random.default_rng(seed)
    nx, ny, nz = shape
    x, y = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    back_y, half_width = 100.0, 20.0
    water = np.zeros(shape, np.float32)
    fat = np.zeros(shape, np.float32)
    for k in range(nz):
        section = np.full((nx, ny), 0.05, np.float32)  # background: subcutaneous fat in water
        for sign, (a, b) in ((-1, (14.0, 22.0)), (1, (14.0, 22.0)), (-1, (18.0, 20.0)), (1, (18.0, 20.0))):
            cx = axis_x + sign * (9.0 if a == 14.0 else 36.0)
            section[((x - cx) / a) ** 2 + ((y - (back_y - 45.0)) / b) ** 2 <= 1] = 1.0  # multifidus, erector spinae
        section[(np.abs(x - axis_x) <= 3) & (y < back_y - 20) & (y > back_y - 70)] = 0.2  # spinous process
        water[:, :, k] = section + rng.normal(0, 0.02, (nx, ny))
        fat[:, :, k] = np.where(section < 0.1, 0.9, 0.1) + rng.normal(0, 0.02, (nx, ny))
    body_centre = axis_x + 6.0
    frames = [SliceFrame(np.array([body_centre, back_y + half_width]), back_y, half_width, half_width,
                         np.zeros((nx, ny), bool), 2.0) for _ in range(nz)]
    # as segment() gives it: the water image smoothed in-plane
    return ndimage.gaussian_filter(water, sigma=(0.7, 0.7, 0)), water + fat, frames


def test_axis_found_where_the_body_centre_is_off():
    water, total, frames = mirror_back(97.5)
    midlines = _symmetry_midlines(water, total, frames, SPACING)
    assert np.all(np.abs(midlines - 97.5) <= 0.5), midlines


def test_axis_holds_when_one_side_is_fatty():
    """Fatty atrophy of one side: its water signal halves, its fat rises, the total stays; the
    axis must not move towards the lean side's image."""
    water, total, frames = mirror_back(101.0, seed=1)
    x, y = np.meshgrid(np.arange(water.shape[0]), np.arange(water.shape[1]), indexing="ij")
    right_multifidus = ((x - 110.0) / 14.0) ** 2 + ((y - 55.0) / 22.0) ** 2 <= 1
    water[right_multifidus] *= 0.4  # fat fraction about 0.6 there; total (water + fat) unchanged
    midlines = _symmetry_midlines(water, total, frames, SPACING)
    assert np.all(np.abs(midlines - 101.0) <= 1.0), midlines


def test_body_centre_kept_where_the_band_is_out_of_the_image():
    water, total, frames = mirror_back(100.0)
    frames = [SliceFrame(f.centre, 10.0, f.half_width_mm, f.half_depth_mm, f.body, f.level) for f in frames]
    midlines = _symmetry_midlines(water, total, frames, SPACING)
    assert np.allclose(midlines, frames[0].centre[0])

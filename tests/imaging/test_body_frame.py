"""The anatomical segmenter measures the vertebral body's back wall and width on the body itself
(imaging.segment_anatomical._body_on_midline), whatever else the vertebra label holds: pedicles
and posterior corners (as the real scan's label), or the whole vertebra with its arch and
transverse processes (as TotalSegmentator's vertebrae). Shapes from lumbar dimensions (Panjabi
et al. 1992, Spine 17:299: body 45-50 mm wide, 33-35 mm deep; canal 22-25 mm across, 15-18 mm
deep; lamina 5-7 mm; transverse processes reaching 40-45 mm from the midline)."""
import numpy as np
import pytest

from imaging.segment import _vertebra_geometry
from imaging.segment_anatomical import _whole_vertebrae

SPACING = (1.0, 1.0, 4.0)
CONVENTION = {"L2": 2, "L3": 3}
CX, FRONT, BACK = 100, 140, 106  # body: x 76-124 (half-width 24.5 mm), y 106-140 (17.5 mm half-depth)


def vertebra_label(parts: str, shape=(200, 200, 12)) -> np.ndarray:
    """Two vertebrae (L2 on slices 0-5, L3 on 6-11) drawn as `parts`: "body", "corners"
    (the body plus its posterolateral corners beside the canal, 9 mm further back) or "whole"
    (body, pedicles, laminae around the canal, spinous process and transverse processes)."""
    x, y = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    body = (((x - CX) / 24.5) ** 2 + ((y - 123.0) / 17.5) ** 2 <= 1.0) & (y >= BACK)
    canal = ((x - CX) / 11.5) ** 2 + ((y - (BACK - 8.0)) / 8.0) ** 2 <= 1.0  # 23 x 16 mm, behind the body
    section = body.copy()
    if parts in ("corners", "whole"):
        section |= (np.abs(x - CX) > 12) & (np.abs(x - CX) <= 22) & (y >= BACK - 9) & (y < BACK)
    if parts == "whole":
        ring = (((x - CX) / 17.5) ** 2 + ((y - (BACK - 8.0)) / 14.0) ** 2 <= 1.0) & ~canal  # pedicles, laminae
        spinous = (np.abs(x - CX) <= 3) & (y < BACK - 16) & (y >= BACK - 45)
        transverse = (np.abs(x - CX) >= 15) & (np.abs(x - CX) <= 44) & (np.abs(y - (BACK - 6)) <= 3)
        section |= ring | spinous | transverse
    section &= ~canal
    label = np.zeros(shape, np.int16)
    label[:, :, :6][section] = 2
    label[:, :, 6:][section] = 3
    return label


@pytest.mark.parametrize("parts", ["body", "corners", "whole"])
def test_back_wall_and_width_are_the_bodys(parts):
    geometry = _whole_vertebrae(vertebra_label(parts), CONVENTION, SPACING)
    for name in CONVENTION:
        g = geometry[name]
        back_y = g.centre[1] - g.half_depth_mm / SPACING[1]
        assert abs(back_y - BACK) <= 1.0, (parts, back_y)
        assert abs(g.half_width_mm - 24.5) <= 1.0, (parts, g.half_width_mm)
        assert abs(g.centre[0] - CX) <= 1.0


def test_the_labels_extent_alone_is_misled():
    """The check above can fail: measured by the label's extent, as imaging.segment does, the
    whole vertebra's back wall lies at the spinous process's tip and its width at the
    transverse processes."""
    g = _vertebra_geometry(vertebra_label("whole"), CONVENTION, SPACING)["L3"]
    assert g.centre[1] - g.half_depth_mm / SPACING[1] < BACK - 30
    assert g.half_width_mm > 40.0

"""imaging.evaluation.agreement on label maps drawn by hand, whose areas are known exactly."""
import numpy as np
import pytest

from imaging.evaluation import agreement
from imaging.labels import MUSCLE_LABELS
from imaging.levels import Levels

AFFINE = np.diag([1.0, 1.0, 4.0, 1.0])  # 1 x 1 mm voxels, 4 mm slices
LEVELS = Levels(disc_slice={"L4-L5": 3.0, "L5-S1": 7.0}, source="labels", at_edge=())


def maps():
    """A reference with a 21 x 21 voxel multifidus and a 6 x 6 voxel quadratus lumborum (a
    muscle's tail, 36 mm^2) on every slice; labels that hold the multifidus only."""
    reference = np.zeros((60, 40, 10), np.uint8)
    reference[5:26, 10:31] = MUSCLE_LABELS[("multifidus", "left")]
    reference[40:46, 10:16] = MUSCLE_LABELS[("quadratus_lumborum", "left")]
    labels = np.where(reference == MUSCLE_LABELS[("multifidus", "left")], reference, 0).astype(np.uint8)
    water = np.where(reference > 0, 0.9, 0.05).astype(np.float32)
    fat = np.where(reference > 0, 0.1, 0.95).astype(np.float32)
    return labels, reference, water, fat


def test_a_section_under_the_floor_is_scored_in_mm2_not_in_percent():
    labels, reference, water, fat = maps()
    plain = agreement(labels, reference, water, fat, AFFINE, LEVELS)
    floored = agreement(labels, reference, water, fat, AFFINE, LEVELS, min_csa_area_mm2=100.0)
    tail = ("quadratus_lumborum", "left")
    assert plain[tail].level_csa_error.tolist() == [1.0, 1.0]  # missed: all of it, in percent
    assert plain[tail].small_csa_error_mm2.size == 0
    assert floored[tail].level_csa_error.size == 0
    assert floored[tail].small_csa_error_mm2 == pytest.approx([36.0, 36.0], rel=0.05)
    # a section over the floor is scored as before
    whole = ("multifidus", "left")
    assert floored[whole].level_csa_error == pytest.approx(plain[whole].level_csa_error)
    assert floored[whole].level_csa_error == pytest.approx([0.0, 0.0], abs=1e-6)
    assert floored[whole].dice == 1.0 and floored[tail].dice == 0.0

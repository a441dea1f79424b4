"""imaging.evaluation.coarsened: a subject on larger in-plane voxels, checked by hand."""
import nibabel as nib
import numpy as np
import pytest

from imaging.evaluation import coarsened


def _subject():
    water = np.arange(5 * 4 * 2, dtype=np.float32).reshape(5, 4, 2)
    labels = np.zeros((5, 4, 2), np.uint8)
    labels[0:2, 0:2, :] = [[3, 3], [3, 0]]  # block (0, 0): three of four voxels are 3
    labels[2:4, 0:2, :] = [[1, 2], [2, 1]]  # a tie: the lower value
    affine = np.array([[-0.5, 0, 0, 10.0], [0, 0.5, 0, -4.0], [0, 0, 3.0, 7.0], [0, 0, 0, 1]])
    return dict(water=water, fat=2 * water, affine=affine, vertebrae=labels.astype(np.int32), reference=labels,
                name="hand")


def test_blocks_are_averaged_and_labels_take_the_majority():
    s = _subject()
    c = coarsened(s, 2)
    assert c["water"].shape == (2, 2, 2)  # 5 x 4 cropped to 4 x 4, then halved; slices kept
    assert c["water"][0, 0, 1] == pytest.approx(s["water"][0:2, 0:2, 1].mean())
    assert c["fat"][1, 1, 0] == pytest.approx(s["fat"][2:4, 2:4, 0].mean())
    assert c["reference"][0, 0, 0] == 3 and c["reference"][1, 0, 1] == 1
    assert c["vertebrae"].dtype == np.int32 and c["reference"].dtype == np.uint8
    assert c["name"] == "hand"


def test_each_new_voxel_sits_at_its_block_centre():
    s = _subject()
    c = coarsened(s, 2)
    assert np.allclose(np.abs(np.diag(c["affine"])[:3]), [1.0, 1.0, 3.0])
    # the world position of new voxel (1, 0, 1) is the mean of its four old voxels' positions
    old = [s["affine"] @ [i, j, 1, 1] for i in (2, 3) for j in (0, 1)]
    assert np.allclose(c["affine"] @ [1, 0, 1, 1], np.mean(old, axis=0))
    assert nib.aff2axcodes(c["affine"]) == nib.aff2axcodes(s["affine"])


def test_factor_one_is_the_subject_and_below_one_is_refused():
    s = _subject()
    c = coarsened(s, 1)
    assert np.array_equal(c["water"], s["water"][:5, :4]) and np.allclose(c["affine"], s["affine"])
    with pytest.raises(ValueError, match="factor"):
        coarsened(s, 0)

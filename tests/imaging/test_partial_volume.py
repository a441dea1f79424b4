"""Partial volume at a muscle's border (imaging.partial_volume, imaging.quantify.dixon_section)
on sections drawn with 8 x 8 sub-voxels, whose area and fat fraction are known exactly."""
import numpy as np
import pytest

from imaging.quantify import dixon_section

MUSCLE = (0.9 * 0.9, 0.9 * 0.1)  # (water, fat) of muscle with 10 % fat, proton density 0.9
FAT = (0.05, 0.95)  # adipose tissue
VALUE = 7


def render(tissue, shape=(40, 40), sub=8):
    """Voxel water, fat, label (more than half muscle) and the exact muscle area (voxels) and
    fat fraction (mean over the muscle) of `tissue(x, y) -> (water, fat, is_muscle)`."""
    offsets = (np.arange(sub) + 0.5) / sub - 0.5
    x = np.arange(shape[0])[:, None, None, None] + offsets[None, None, :, None]
    y = np.arange(shape[1])[None, :, None, None] + offsets[None, None, None, :]
    x, y = np.broadcast_arrays(x, y)
    water, fat, muscle = tissue(x, y)
    share = muscle.mean((2, 3))
    fraction = np.where(muscle, fat / np.maximum(water + fat, 1e-9), 0.0).sum() / muscle.sum()
    labels = np.where(share > 0.5, VALUE, 0).astype(np.uint8)
    return water.mean((2, 3)), fat.mean((2, 3)), labels, share.sum(), fraction


def ellipse(a, b, centre=(20.3, 20.6), patch=None, void_below=None):
    """Muscle ellipse in fat; optionally a fat patch (x, y, radius, fat fraction) inside it and
    signal void (bone) below a line."""
    def tissue(x, y):
        muscle = ((x - centre[0]) / a) ** 2 + ((y - centre[1]) / b) ** 2 < 1
        water, fat = np.where(muscle, MUSCLE[0], FAT[0]), np.where(muscle, MUSCLE[1], FAT[1])
        if patch is not None:
            px, py, radius, fraction = patch
            inside = muscle & (np.hypot(x - px, y - py) < radius)
            water, fat = np.where(inside, 0.9 * (1 - fraction), water), np.where(inside, 0.9 * fraction, fat)
        if void_below is not None:
            void = y < void_below
            water, fat, muscle = np.where(void, 0.0, water), np.where(void, 0.0, fat), muscle & ~void
        return water, fat, muscle
    return tissue


@pytest.mark.parametrize("tissue", [ellipse(9.0, 2.2), ellipse(6.4, 6.4), ellipse(8.0, 5.0, void_below=17.2)],
                         ids=["thin", "round", "against bone"])
def test_border_voxels_count_their_muscle_share(tissue):
    water, fat, labels, area, fraction = render(tissue)
    section = dixon_section(labels, VALUE, water, fat)
    assert section.area == pytest.approx(area, rel=0.005)
    assert section.fat / (section.fat + section.water) == pytest.approx(fraction, abs=0.002)


def test_a_fat_patch_at_the_border_is_read_as_muscle():
    """A 0.8-fat patch reaching the edge: the local muscle reference keeps it in the section."""
    water, fat, labels, area, fraction = render(ellipse(8.0, 5.0, patch=(26.0, 23.0, 3.0, 0.8)))
    section = dixon_section(labels, VALUE, water, fat)
    assert fraction == pytest.approx(0.2, abs=0.01)  # the patch is a sixth of the section
    assert section.area == pytest.approx(area, rel=0.015)
    assert section.fat / (section.fat + section.water) == pytest.approx(fraction, abs=0.01)


def test_free_lean_tissue_next_to_the_muscle_is_not_counted():
    """Lean tissue the segmenter left out (a disc, another organ) is not partial volume."""
    def tissue(x, y):
        water, fat, muscle = ellipse(6.0, 6.0)(x, y)
        disc = (x > 26.3) & (np.abs(y - 20.6) < 6)
        return np.where(disc, MUSCLE[0], water), np.where(disc, 0.02, fat), muscle
    water, fat, labels, area, _ = render(tissue)
    assert dixon_section(labels, VALUE, water, fat).area == pytest.approx(area, rel=0.02)


def test_the_border_step_joins_only_where_the_muscle_may_lie():
    """imaging.segment._partial_volume_borders: a muscle ellipse labelled one voxel short of its
    true outline gets the ring back where it is claimable, and nowhere else."""
    from imaging.segment import _partial_volume_borders

    water, fat, truth, _, _ = render(ellipse(8.0, 5.0))
    truth = truth == VALUE
    inner = np.zeros_like(truth)
    inner[1:-1, 1:-1] = truth[1:-1, 1:-1] & truth[:-2, 1:-1] & truth[2:, 1:-1] & truth[1:-1, :-2] & truth[1:-1, 2:]
    stack = lambda a: np.stack([a, a], -1)  # noqa: E731 - two slices: the step works per slice
    labels, soft = stack(np.where(inner, VALUE, 0).astype(np.uint8)), stack(np.ones(truth.shape, bool))
    free = _partial_volume_borders(labels, stack(water), stack(fat), soft)
    assert ((free[:, :, 0] == VALUE) & ~truth).sum() <= 2
    assert (free[:, :, 0] == VALUE).sum() >= 0.97 * truth.sum()
    claimable = np.full(labels.shape, 0xFFFF, np.uint16)
    claimable[20:, :, :] &= ~np.uint16(1 << (VALUE - 1))  # the muscle may not lie at x >= 20
    held = _partial_volume_borders(labels, stack(water), stack(fat), soft, claimable)
    ring = (free == VALUE) & (labels == 0)
    assert ring[:20].any() and ring[20:].any()
    assert ((held == VALUE) & (labels == 0))[:20].sum() == ring[:20].sum()
    assert not ((held == VALUE) & (labels == 0))[20:].any()

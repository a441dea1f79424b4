"""The default (anatomical) segmenter on both phantom families, on subjects it was not
developed on: `lumbar-twin phantom` (written with the earlier watershed method) and the
anatomic family (written from anatomy references, independently of both segmenters). Floors
are regression guards well under the figures in docs/imaging.md; the issue 11 targets (Dice
0.90 and CSA within 5 %) are not met on the anatomic family yet."""
import nibabel as nib
import numpy as np
import pytest

from imaging.evaluation import agreement
from imaging.labels import DEFAULT_VERTEBRA_LABELS
from imaging.levels import levels_from_vertebrae
from imaging.segment_anatomical import segment

#: (muscle group -> Dice floor) per family; measured 2026-11-30 on seeds 400-407 (median / min):
#: phantom psoas 0.97 / 0.94, quadratus lumborum 0.97 / 0.83, erector spinae 0.99 / 0.88,
#: multifidus 0.97 / 0.83; anatomic psoas 0.79 / 0.73, quadratus lumborum 0.57 / 0.37,
#: erector spinae 0.84 / 0.76, multifidus 0.74 / 0.65.
FLOORS = {
    "phantom": {"psoas": 0.85, "quadratus_lumborum": 0.70, "erector_spinae": 0.85, "multifidus": 0.75},
    "anatomic": {"psoas": 0.60, "quadratus_lumborum": 0.25, "erector_spinae": 0.70, "multifidus": 0.55},
}


def subject(family: str, seed: int):
    if family == "phantom":
        from imaging.phantom import make_phantom
        ph = make_phantom(seed, noise=(0.02, 0.04, 0.06)[seed % 3],
                          variant=(None, "atrophy", "slim", "large")[seed % 4])
    else:
        from imaging.anatomic_phantom import make_anatomic_phantom
        ph = make_anatomic_phantom(seed)
    images = {k: nib.as_closest_canonical(nib.Nifti1Image(np.asarray(getattr(ph, k)), ph.affine))
              for k in ("water", "fat", "labels", "vertebrae")}
    arrays = {k: np.asarray(img.dataobj) for k, img in images.items()}
    return arrays, images["water"].affine, ph.truth


@pytest.mark.slow
@pytest.mark.parametrize("family,seed", [("phantom", 300), ("phantom", 301), ("anatomic", 300), ("anatomic", 301),
                                         ("anatomic", 302)])
def test_anatomical_segmenter_on_phantom_families(family, seed):
    arrays, affine, truth = subject(family, seed)
    vertebrae = np.rint(arrays["vertebrae"]).astype(np.int32)
    spacing = tuple(float(v) for v in np.linalg.norm(affine[:3, :3], axis=0))
    labels = segment(arrays["water"].astype(np.float32), arrays["fat"].astype(np.float32), vertebrae,
                     DEFAULT_VERTEBRA_LABELS, spacing)
    levels = levels_from_vertebrae(vertebrae, DEFAULT_VERTEBRA_LABELS)
    assert levels.found == ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")  # every level found
    found = agreement(labels, np.rint(arrays["labels"]).astype(np.uint8), arrays["water"], arrays["fat"], affine,
                      levels, truth=truth)
    for (muscle, side), a in found.items():
        assert a.dice >= FLOORS[family][muscle], (muscle, side, a.dice)
        # fat fraction at the discs (quadratus lumborum's leaks into fat reach 0.07 on the anatomic family)
        bound = 0.10 if muscle == "quadratus_lumborum" else 0.06
        assert np.median(a.level_ff_error) <= bound, (muscle, side, a.level_ff_error)

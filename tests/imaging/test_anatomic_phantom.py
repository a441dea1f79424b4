"""The anatomic phantom's own consistency: labels vs truth, signal vs truth, geometry, I/O."""
import json

import nibabel as nib
import numpy as np
import pytest
from scipy.ndimage import binary_erosion

from imaging.anatomic_phantom import (AnatomicPhantom, HABITUS, _draw_params, make_anatomic_phantom,
                                      write_anatomic_phantom)
from imaging.io import load_image
from imaging.labels import DEFAULT_VERTEBRA_LABELS, MUSCLE_LABELS
from imaging.morphometry import LEVELS, MUSCLES, SIDES, parse_morphometry


def _canonical(ph: AnatomicPhantom):
    """water, fat, labels, vertebrae in RAS+ array order, and the canonical affine."""
    out = []
    for arr in (ph.water, ph.fat, ph.labels, ph.vertebrae):
        img = nib.as_closest_canonical(nib.Nifti1Image(arr, ph.affine))
        out.append(np.asarray(img.dataobj))
    return (*out, img.affine)


def _slice_of(affine, n_slices, z_world):
    zs = affine[2, 3] + affine[2, 2] * np.arange(n_slices)
    return int(np.argmin(np.abs(zs - z_world))), zs


@pytest.fixture(scope="module")
def clean():
    """Noiseless, 1.5 x 1.5 x 3 mm: the reference subject of the consistency tests."""
    ph = make_anatomic_phantom(2, habitus="average", voxel_mm=(1.5, 1.5, 3.0), noise=0.0)
    return ph, _canonical(ph)


def test_truth_is_complete(clean):
    ph, _ = clean
    assert len(ph.truth.muscles) == len(MUSCLES) * len(SIDES) * len(LEVELS)
    for m in ph.truth.muscles:
        assert 0.0 <= m.fat_fraction <= 1.0
        assert m.lean_csa_mm2 == pytest.approx(m.csa_mm2 * (1 - m.fat_fraction), rel=1e-4, abs=0.02)
    for m in MUSCLES:
        assert all(ph.truth.get(m, s, "L3-L4").csa_mm2 > 100 for s in SIDES)
    # multifidus grows caudally, psoas is smallest at L1-L2
    mf = [ph.truth.get("multifidus", "left", lvl).csa_mm2 for lvl in LEVELS]
    assert mf[-1] > mf[0]
    ps = [ph.truth.get("psoas", "right", lvl).csa_mm2 for lvl in LEVELS]
    assert ps[0] == min(ps)


def test_labelled_area_matches_truth_csa(clean):
    ph, (_, _, lab, _, aff) = clean
    pixel = abs(aff[0, 0] * aff[1, 1])
    errors = []
    for lvl, z in ph.params["grid"]["disc_z_world_mm"].items():
        k, _ = _slice_of(aff, lab.shape[2], z)
        for (m, s), value in MUSCLE_LABELS.items():
            truth = ph.truth.get(m, s, lvl).csa_mm2
            if truth < 250:
                continue
            area = float((lab[:, :, k] == value).sum() * pixel)
            errors.append((area - truth) / truth)
            # partial volume: half a voxel along a (non-convex) perimeter; the slice centre lies
            # up to half a slice from the disc plane
            perimeter = 2.6 * np.sqrt(np.pi * truth)
            assert abs(area - truth) < 0.1 * truth + 0.5 * abs(aff[0, 0]) * perimeter, (lvl, m, s, area, truth)
    assert abs(np.mean(errors)) < 0.05


def test_truth_fat_fraction_matches_signal(clean):
    ph, (water, fat, lab, _, aff) = clean
    diffs = []
    for lvl, z in ph.params["grid"]["disc_z_world_mm"].items():
        k, _ = _slice_of(aff, lab.shape[2], z)
        for (m, s), value in MUSCLE_LABELS.items():
            inner = binary_erosion(lab[:, :, k] == value, iterations=2)
            if inner.sum() < 30:
                continue
            f, w = fat[:, :, k][inner].sum(), water[:, :, k][inner].sum()
            diffs.append(f / (f + w) - ph.truth.get(m, s, lvl).fat_fraction)
    diffs = np.abs(diffs)
    assert len(diffs) >= 30
    assert np.median(diffs) < 0.015 and diffs.max() < 0.06


def test_left_labels_on_patients_left(clean):
    _, (_, _, lab, vert, aff) = clean
    x = aff[0, 3] + aff[0, 0] * np.arange(lab.shape[0])
    assert aff[0, 0] > 0  # canonical: +x is the patient's right
    spine_x = x[np.nonzero(vert > 0)[0]].mean()
    for m in MUSCLES:
        xl = x[np.nonzero(lab == MUSCLE_LABELS[(m, "left")])[0]].mean()
        xr = x[np.nonzero(lab == MUSCLE_LABELS[(m, "right")])[0]].mean()
        assert xl < spine_x < xr, m


def test_psoas_beside_the_body_and_in_front_of_the_paraspinals(clean):
    ph, (_, _, lab, vert, aff) = clean
    x = aff[0, 3] + aff[0, 0] * np.arange(lab.shape[0])
    y = aff[1, 3] + aff[1, 1] * np.arange(lab.shape[1])
    for lvl in ("L2-L3", "L3-L4", "L4-L5"):
        k, _ = _slice_of(aff, lab.shape[2], ph.params["grid"]["disc_z_world_mm"][lvl])
        bi = np.nonzero((vert[:, :, max(k - 4, 0):k + 5] > 0).any((1, 2)))[0]
        body_x, half_w = x[bi].mean(), (x[bi].max() - x[bi].min()) / 2
        sl = lab[:, :, k]
        for side in SIDES:
            pi, pj = np.nonzero(sl == MUSCLE_LABELS[("psoas", side)])
            assert abs(x[pi].mean() - body_x) > 0.8 * half_w, (lvl, side)
            for other in ("erector_spinae", "multifidus"):
                oi, oj = np.nonzero(sl == MUSCLE_LABELS[(other, side)])
                assert y[pj].mean() > y[oj].mean() + 20.0, (lvl, side, other)
            qi, qj = np.nonzero(sl == MUSCLE_LABELS[("quadratus_lumborum", side)])
            if len(qi) > 50:  # QL lies lateral to psoas
                assert abs(x[qi].mean() - body_x) > abs(x[pi].mean() - body_x)


def test_every_disc_and_the_vertebrae_in_view(clean):
    ph, (_, _, lab, vert, aff) = clean
    zs = aff[2, 3] + aff[2, 2] * np.arange(lab.shape[2])
    for lvl, z in ph.params["grid"]["disc_z_world_mm"].items():
        assert zs.min() + 3.0 <= z <= zs.max() - 3.0, lvl
    present = set(np.unique(vert)) - {0}
    assert present == set(DEFAULT_VERTEBRA_LABELS.values())
    # at least 20 mm of slices below the L5-S1 disc plane, which still show S1
    k_s1 = np.nonzero((vert == DEFAULT_VERTEBRA_LABELS["S1"]).any((0, 1)))[0]
    assert ph.params["grid"]["disc_z_world_mm"]["L5-S1"] - zs[k_s1].min() >= 15.0


def test_seed_reproducible_and_seeds_differ():
    a = make_anatomic_phantom(11, voxel_mm=(2.0, 2.0, 6.0))
    b = make_anatomic_phantom(11, voxel_mm=(2.0, 2.0, 6.0))
    assert np.array_equal(a.water, b.water) and np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.affine, b.affine) and a.params == b.params
    assert a.truth == b.truth
    other = _draw_params(12, None, (2.0, 2.0, 6.0), None)
    assert other["muscles"] != a.params["muscles"] and other["body"] != a.params["body"]
    json.dumps(a.params)  # JSON-serialisable


def _back_fat_mm(ph: AnatomicPhantom) -> float:
    """Subcutaneous fat thickness behind the erector spinae at L3-L4 (noiseless images)."""
    water, fat, lab, _, aff = _canonical(ph)
    k, _ = _slice_of(aff, lab.shape[2], ph.params["grid"]["disc_z_world_mm"]["L3-L4"])
    es = lab[:, :, k] == MUSCLE_LABELS[("erector_spinae", "right")]
    i = int(np.round(np.nonzero(es)[0].mean()))
    j_muscle = np.nonzero(es[i])[0].min()
    column = fat[i, :j_muscle, k] > water[i, :j_muscle, k]
    fatty = np.nonzero(column)[0]
    return (j_muscle - fatty.min()) * abs(aff[1, 1]) if len(fatty) else 0.0


def test_habitus_changes_subcutaneous_fat():
    slim = make_anatomic_phantom(21, habitus="slim", voxel_mm=(2.0, 2.0, 6.0), noise=0.0)
    obese = make_anatomic_phantom(21, habitus="obese", voxel_mm=(2.0, 2.0, 6.0), noise=0.0)
    assert slim.params["habitus"] == "slim" and obese.params["habitus"] == "obese"
    assert 5 <= slim.params["body"]["subq_back_mm"] <= 15 <= 30 <= obese.params["body"]["subq_back_mm"] <= 70
    assert _back_fat_mm(obese) > _back_fat_mm(slim) + 15.0


def test_voxel_sizes_and_orientation(tmp_path):
    ph = make_anatomic_phantom(5, voxel_mm=(1.8, 1.6, 5.0))
    img = nib.Nifti1Image(ph.water, ph.affine)
    spacing = np.abs(nib.as_closest_canonical(img).affine[:3, :3]).sum(0)
    assert np.allclose(spacing, (1.8, 1.6, 5.0))
    assert "".join(nib.aff2axcodes(ph.affine)) == ph.params["acquisition"]["orientation"]
    assert ph.water.dtype == ph.fat.dtype == np.float32
    assert ph.labels.dtype == ph.vertebrae.dtype == np.uint8
    fov = np.abs(ph.affine[:3, :3]) @ np.array(ph.water.shape)
    assert sorted(fov)[1] <= 425.0  # in-plane FOV at most ~420 mm
    # defaults drawn from the seed within the published protocol ranges
    for seed in range(30):
        p = _draw_params(seed, None, None, None)
        dx, dy, dz = p["voxel_mm"]
        assert 1.0 <= dx == dy <= 2.0 and 3.0 <= dz <= 6.0 and 0.02 <= p["noise"] <= 0.06
        assert p["habitus"] in HABITUS
    orientations = {_draw_params(seed, None, None, None)["acquisition"]["orientation"] for seed in range(30)}
    assert len(orientations) >= 3


def test_write_round_trip(tmp_path):
    ph = make_anatomic_phantom(7, voxel_mm=(2.0, 2.0, 6.0))
    paths = write_anatomic_phantom(ph, tmp_path / "subject")
    assert set(paths) == {"water", "fat", "vertebrae", "vertebrae_whole", "labels_truth", "truth"}
    for name in ("water", "fat", "vertebrae", "vertebrae_whole", "labels_truth"):
        img = nib.load(str(paths[name]))
        assert int(img.header["sform_code"]) == 1 and int(img.header["qform_code"]) == 1
        assert np.allclose(img.get_sform(), ph.affine, atol=1e-4)
        assert np.allclose(img.get_qform(), ph.affine, atol=1e-4)
    assert np.array_equal(np.asarray(nib.load(str(paths["labels_truth"])).dataobj), ph.labels)
    doc = json.loads(paths["truth"].read_text())
    assert doc["provenance"]["generator"] == "lumbar-twin anatomic phantom"
    assert doc["provenance"]["seed"] == 7 and doc["provenance"]["params"] == ph.params
    assert parse_morphometry(doc, paths["truth"]).muscles == ph.truth.muscles
    # the toolkit's loader reorients to RAS: the psoas labels of both sides come back in place
    lab = load_image(paths["labels_truth"])
    x = lab.affine[0, 3] + lab.affine[0, 0] * np.arange(lab.shape[0])
    left = x[np.nonzero(lab.data == MUSCLE_LABELS[("psoas", "left")])[0]].mean()
    right = x[np.nonzero(lab.data == MUSCLE_LABELS[("psoas", "right")])[0]].mean()
    assert left < right


def test_bad_arguments():
    with pytest.raises(ValueError):
        make_anatomic_phantom(1, habitus="athletic")
    with pytest.raises(ValueError):
        make_anatomic_phantom(1, voxel_mm=(1.0, 1.0))

"""Checks of the fault generators in scanner_faults.py (the generators, not the toolkit).

A small synthetic subject drawn here (an elliptical body of fat, eight vertical muscle
cylinders, six vertebral bodies with fatty marrow, air around) gives exact answers.
"""

import numpy as np
import nibabel as nib
import pydicom
import pytest

from tests.imaging import scanner_faults as sf

SHAPE = (48, 40, 52)
SPACING = (4.0, 4.0, 4.0)
BODY_SLICES, DISC_SLICES = 6, 2
# Muscle centres (x, y) in RAS mm and radii: left is -x.
MUSCLES = {1: (-30, 12, 12), 2: (30, 12, 12), 3: (-58, -12, 9), 4: (58, -12, 9),
           5: (-32, -42, 14), 6: (32, -42, 14), 7: (-11, -46, 8), 8: (11, -46, 8)}


def _subject(affine):
    """water, fat, vertebrae, muscle labels on SHAPE with ``affine`` (noise free)."""
    ijk = np.indices(SHAPE).reshape(3, -1).T
    # Anatomy is drawn in the grid's own frame centred on the volume (so oblique grids carry it).
    local = (ijk - (np.array(SHAPE) - 1) / 2.0) * np.array(SPACING)
    x, y = local[:, 0], local[:, 1]
    k = ijk[:, 2]
    body = (x / 88.0) ** 2 + (y / 72.0) ** 2 <= 1
    water = np.where(body, 0.1, 0.0)
    fat = np.where(body, 0.9, 0.0)
    labels = np.zeros(len(x), np.uint8)
    for value, (cx, cy, r) in MUSCLES.items():
        inside = (x - cx) ** 2 + (y - cy) ** 2 <= r * r
        labels[inside] = value
        water[inside], fat[inside] = 0.9, 0.1
    vert = np.zeros(len(x), np.uint8)
    column = ((x / 18.0) ** 2 + ((y - 22.0) / 14.0) ** 2) <= 1
    period = BODY_SLICES + DISC_SLICES
    for n in range(6):  # L1 at the top (high k is superior here)
        top = SHAPE[2] - 2 - n * period
        in_body = column & (k <= top) & (k > top - BODY_SLICES)
        vert[in_body] = n + 1
        water[in_body], fat[in_body] = 0.4, 0.6
    in_disc = column & (vert == 0) & (k < SHAPE[2] - 2) & (k > SHAPE[2] - 2 - 6 * period)
    water[in_disc], fat[in_disc] = 0.85, 0.05
    r = lambda a: a.reshape(SHAPE)  # noqa: E731
    return r(water).astype(np.float32), r(fat).astype(np.float32), r(vert), r(labels)


def _axial_affine():
    aff = np.diag(list(SPACING) + [1.0])
    aff[:3, 3] = -(np.array(SHAPE) - 1) / 2.0 * np.array(SPACING)
    return aff


def _oblique_affine(deg=10.0):
    rot = sf._rotation([1.0, 0.3, 0.0], np.radians(deg))
    aff = _axial_affine()
    aff[:3, :3] = rot @ aff[:3, :3]
    aff[:3, 3] = rot @ aff[:3, 3] + [5.0, -12.0, 40.0]
    return aff


@pytest.fixture(scope="module")
def subject(tmp_path_factory):
    d = tmp_path_factory.mktemp("faults_subject")
    aff = _axial_affine()
    w, f, v, lab = _subject(aff)
    paths = {}
    for name, arr in (("water", w), ("fat", f), ("vertebrae", v), ("labels_truth", lab)):
        paths[name] = d / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(arr, aff), str(paths[name]))
    return paths


def _affine_from_dicom(files):
    """RAS affine of a single-orientation series, from IPP/IOP/PixelSpacing (PS3.3 C.7.6.2)."""
    dss = [pydicom.dcmread(str(p)) for p in files]
    iop = np.array(dss[0].ImageOrientationPatient, float)
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    dss.sort(key=lambda d: np.array(d.ImagePositionPatient, float) @ normal)
    ps = np.array(dss[0].PixelSpacing, float)
    p0 = np.array(dss[0].ImagePositionPatient, float)
    p1 = np.array(dss[1].ImagePositionPatient, float)
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2], lps[:3, 3] = row * ps[1], col * ps[0], p1 - p0, p0
    return np.diag([-1, -1, 1, 1]) @ lps, dss


def test_sform_qform_disagree_by_the_stated_angle(tmp_path, subject):
    paths, truth = sf.sform_qform_disagree(tmp_path / "a", subject["water"], subject["fat"],
                                           angle_deg=90, which=("fat",))
    fat, water = nib.load(str(paths["fat"])), nib.load(str(paths["water"]))
    assert int(fat.header["qform_code"]) == 1 and int(fat.header["sform_code"]) == 2
    rel = fat.get_qform()[:3, :3] @ np.linalg.inv(fat.get_sform()[:3, :3])
    angle = np.degrees(np.arccos((np.trace(rel) - 1) / 2))
    assert angle == pytest.approx(90, abs=1e-3)
    # about the slice axis: that axis is left where it was
    axis = fat.get_sform()[:3, 2] / np.linalg.norm(fat.get_sform()[:3, 2])
    assert np.allclose(rel @ axis, axis, atol=1e-5)
    assert np.allclose(water.get_qform(), water.get_sform(), atol=1e-4)
    assert truth["measured_angle_deg"]["fat"] == pytest.approx(90, abs=1e-3)
    assert truth["max_offset_mm"]["fat"] > 50

    paths, truth = sf.sform_qform_disagree(tmp_path / "b", subject["water"], subject["fat"],
                                           tiny=True)
    for name in ("water", "fat"):
        img = nib.load(str(paths[name]))
        diff = np.abs(img.get_qform() - img.get_sform()).max()
        assert 0 < diff < 1e-3
        assert truth["max_offset_mm"][name] < 1e-3


def test_dicom_geometry_round_trips_an_oblique_grid_in_lps(tmp_path):
    aff = _oblique_affine(10.0)
    w, f, _, _ = _subject(aff)
    paths, truth = sf.dicom_series(tmp_path, (w, aff))
    got, dss = _affine_from_dicom(paths["files"])
    assert np.allclose(got, aff, atol=1e-3)
    ds = dss[0]
    assert ds.SOPClassUID == pydicom.uid.MRImageStorage
    assert list(ds.ImageType) == ["DERIVED", "PRIMARY", "DIXON", "WATER"]
    assert str(ds.PatientName) == "DOE^JANE" and ds.PatientID == "MRN-123456"
    assert (ds.Rows, ds.Columns, ds.BitsStored, ds.PixelRepresentation) == (40, 48, 16, 0)
    # pixels come back within one rescale step; the slice axis order follows the positions
    vol = np.stack([d.pixel_array.T * float(d.RescaleSlope) + float(d.RescaleIntercept)
                    for d in dss], axis=2)
    if got[2, 2] * aff[2, 2] < 0:
        vol = vol[:, :, ::-1]
    assert np.abs(vol - w).max() <= float(ds.RescaleSlope)
    # an independent reader agrees on the LPS geometry
    sitk = pytest.importorskip("SimpleITK")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader().GetGDCMSeriesFileNames(str(tmp_path)))
    img = reader.Execute()
    direction = np.array(img.GetDirection()).reshape(3, 3)
    assert np.allclose(direction[:, 0], [-aff[0, 0] / 4, -aff[1, 0] / 4, aff[2, 0] / 4], atol=1e-4)
    corner_lps = np.array(img.GetOrigin())
    assert np.isclose(np.linalg.norm(corner_lps - sf._ras_to_lps(aff[:3, 3])), 0, atol=1e-3) or \
        np.isclose(np.linalg.norm(corner_lps - sf._ras_to_lps(sf._world(aff, [0, 0, SHAPE[2] - 1]))),
                   0, atol=1e-3)


def _by_series(folder):
    out = {}
    for p in folder.glob("*.dcm"):
        ds = pydicom.dcmread(str(p), stop_before_pixels=True)
        out.setdefault(ds.SeriesInstanceUID, []).append(ds)
    return out


@pytest.mark.parametrize("style", sorted(sf.LOCALIZER_IMAGE_TYPE))
def test_localizer_water_fat_in_one_folder(tmp_path, subject, style):
    paths, truth = sf.dicom_localizer_water_fat(tmp_path, subject["water"], subject["fat"],
                                                localizer_style=style)
    series = _by_series(paths["folder"])
    assert set(series) == set(truth["series"])
    for uid, dss in series.items():
        want = truth["series"][uid]
        assert len(dss) == want["n_images"]
        assert {tuple(d.ImageType) for d in dss} == {tuple(want["image_type"])}
    loc = series[truth["localizer_series_uid"]]
    normals = {tuple(np.round(np.cross(np.array(d.ImageOrientationPatient[:3], float),
                                       np.array(d.ImageOrientationPatient[3:], float)), 3))
               for d in loc}
    assert len(normals) == 3  # three planes
    assert list(loc[0].ImageType) == sf.LOCALIZER_IMAGE_TYPE[style]
    assert len({d.StudyInstanceUID for dss in series.values() for d in dss}) == 1


@pytest.mark.parametrize("with_phases", [False, True])
def test_interleaved_series_told_apart_only_by_image_type(tmp_path, subject, with_phases):
    paths, truth = sf.dicom_interleaved_dixon(tmp_path, subject["water"], subject["fat"],
                                              with_phases=with_phases)
    series = _by_series(paths["folder"])
    assert list(series) == [truth["series_uid"]]
    dss = series[truth["series_uid"]]
    per_position = 4 if with_phases else 2
    assert len(dss) == per_position * SHAPE[2] == truth["n_images"]
    positions = {tuple(d.ImagePositionPatient) for d in dss}
    assert len(positions) == SHAPE[2]
    types = {int(d.InstanceNumber): tuple(d.ImageType) for d in dss}
    codes = {"water": "W", "fat": "F", "in_phase": "IP", "opposed_phase": "OP"}
    for role, numbers in truth["instances"].items():
        assert all(types[i][2] == codes[role] for i in numbers)
    assert sorted(types) == list(range(1, len(dss) + 1))


def test_mislabelled_pair_has_identical_pixels(tmp_path, subject):
    paths, truth = sf.dicom_mislabelled_pair(tmp_path, subject["water"], subject["fat"])
    w = {d.SOPInstanceUID: d for d in map(pydicom.dcmread, map(str, paths["water"].glob("*.dcm")))}
    f = {d.SOPInstanceUID: d for d in map(pydicom.dcmread, map(str, paths["fat"].glob("*.dcm")))}
    key = lambda d: float(d.ImagePositionPatient[2])  # noqa: E731
    ws, fs = sorted(w.values(), key=key), sorted(f.values(), key=key)
    assert ws[0].SeriesInstanceUID != fs[0].SeriesInstanceUID
    assert ws[0].ImageType[3] == "WATER" and fs[0].ImageType[3] == "FAT"
    assert all(np.array_equal(a.pixel_array, b.pixel_array) for a, b in zip(ws, fs))


def _positions(folder):
    out = []
    for p in folder.glob("*.dcm"):
        d = pydicom.dcmread(str(p), stop_before_pixels=True)
        iop = np.array(d.ImageOrientationPatient, float)
        out.append(float(np.array(d.ImagePositionPatient, float) @ np.cross(iop[:3], iop[3:])))
    return sorted(out)


def test_missing_slice_leaves_a_gap_at_the_stated_position(tmp_path):
    aff = _oblique_affine(8.0)
    w, *_ = _subject(aff)
    paths, truth = sf.dicom_missing_slice(tmp_path, (w, aff), missing_index=20)
    got = _positions(paths["folder"])
    assert np.allclose(got, sorted(truth["actual_positions_mm"]), atol=1e-3)
    gaps = np.diff(got)
    assert len(got) == SHAPE[2] - 1
    assert np.sum(np.isclose(gaps, 8.0, atol=1e-3)) == 1  # one double step
    assert np.sum(np.isclose(gaps, 4.0, atol=1e-3)) == len(gaps) - 1
    missing = truth["missing_position_mm"]
    assert missing not in got and min(got) < missing < max(got)
    assert missing == pytest.approx(truth["expected_positions_mm"][20])


def test_uneven_spacing_has_the_stated_extra_gap(tmp_path, subject):
    paths, truth = sf.dicom_uneven_spacing(tmp_path, subject["water"], from_index=10,
                                           extra_gap_mm=2.5)
    got = _positions(paths["folder"])
    assert np.allclose(got, sorted(truth["actual_positions_mm"]), atol=1e-3)
    gaps = np.diff(got)
    assert np.isclose(gaps, 6.5, atol=1e-3).sum() == 1
    assert np.isclose(gaps, 4.0, atol=1e-3).sum() == len(gaps) - 1
    expected = np.array(truth["expected_positions_mm"])
    assert np.allclose(np.diff(expected), 4.0)


def test_regional_swap_inverts_fat_fraction_inside_only(tmp_path, subject):
    paths, truth = sf.water_fat_swapped_region(tmp_path, subject["water"], subject["fat"])
    w0, f0 = (nib.load(str(subject[n])).get_fdata() for n in ("water", "fat"))
    w1, f1 = (nib.load(str(paths[n])).get_fdata() for n in ("water", "fat"))
    mask = nib.load(str(paths["mask"])).get_fdata() > 0
    assert np.array_equal(mask, truth["mask"]) and truth["n_voxels"] > 100
    from scipy import ndimage
    assert ndimage.label(mask)[1] == 1
    tissue = mask & (w0 + f0 > 0)
    ff0, ff1 = f0 / np.maximum(w0 + f0, 1e-9), f1 / np.maximum(w1 + f1, 1e-9)
    assert np.allclose(ff1[tissue], 1 - ff0[tissue], atol=1e-6)
    assert np.array_equal(w1[~mask], w0[~mask]) and np.array_equal(f1[~mask], f0[~mask])
    assert np.mean(truth["centre_mm"][0]) < 0  # on the patient's left (RAS -x)


def test_masked_background_is_exactly_zero_and_noise_has_sigma(tmp_path, subject):
    paths, truth = sf.masked_background(tmp_path, subject["water"], subject["fat"], sigma=0.05,
                                        seed=1)
    w = nib.load(str(paths["water"])).get_fdata()
    keep = nib.load(str(paths["body"])).get_fdata() > 0
    assert np.all(w[~keep] == 0) and truth["zero_fraction"] > 0.2
    # high-SNR fat (0.9) inside: Rician is nearly Gaussian with the stated sigma
    f = nib.load(str(paths["fat"])).get_fdata()
    f0 = nib.load(str(subject["fat"])).get_fdata()
    sel = keep & (f0 == np.float32(0.9))
    assert np.std(f[sel]) == pytest.approx(0.05, rel=0.05)


def test_cropped_field_of_view_holds_no_air(tmp_path, subject):
    paths, truth = sf.cropped_no_air(tmp_path, subject["water"], subject["fat"], sigma=0.02)
    img = nib.load(str(paths["water"]))
    w0 = nib.load(str(subject["water"])).get_fdata()
    f0 = nib.load(str(subject["fat"])).get_fdata()
    i0, i1, j0, j1 = truth["box"]
    assert truth["air_voxels"] == 0
    assert np.all((w0 + f0)[i0:i1, j0:j1] > 0)  # every voxel is tissue in the noise-free input
    assert (i1 - i0) * (j1 - j0) > 200
    # geometry moved with the crop
    assert np.allclose(sf._world(img.affine, [0, 0, 0]), sf._world(_axial_affine(), [i0, j0, 0]))


def test_totalseg_mr_map_has_one_vertebra_value_and_vessels(tmp_path, subject):
    paths, truth = sf.totalseg_mr_vertebrae(tmp_path, subject["vertebrae"])
    v = np.asarray(nib.load(str(paths["vertebrae"])).dataobj)
    v0 = np.asarray(nib.load(str(subject["vertebrae"])).dataobj)
    assert set(np.unique(v0[(v0 >= 1) & (v0 <= 5)])) == {1, 2, 3, 4, 5}
    assert np.all(v[(v0 >= 1) & (v0 <= 5)] == 19) and np.all(v[v0 == 6] == 18)
    for value in (20, 23, 24, 26, 27, 28, 29):
        assert (v == value).sum() > 10, value
    assert not np.any(np.isin(v, [1, 2, 3, 4, 5, 6]))
    # vessels lie in front of the column (RAS +y), never on a vertebra
    aff = nib.load(str(paths["vertebrae"])).affine
    y_col = sf._world(aff, np.argwhere(v0 > 0))[:, 1].max()
    assert sf._world(aff, np.argwhere(np.isin(v, [23, 24, 26, 27, 28, 29])))[:, 1].min() > y_col - 1


def test_transitional_map_has_six_lumbar_bodies(tmp_path, subject):
    paths, truth = sf.transitional_vertebra(tmp_path, subject["water"], subject["fat"],
                                            subject["vertebrae"], subject["labels_truth"],
                                            extra_value=7)
    v = np.asarray(nib.load(str(paths["vertebrae"])).dataobj)
    assert list(v.shape) == truth["shape"] and v.shape[2] == SHAPE[2] + BODY_SLICES + DISC_SLICES
    from scipy import ndimage
    lumbar = np.isin(v, [1, 2, 3, 4, 5, 7])
    assert ndimage.label(lumbar)[1] == 6
    z = {val: np.argwhere(v == val)[:, 2].mean() for val in (5, 6, 7)}
    assert z[5] > z[7] > z[6]  # the extra body between L5 and S1 (k grows upward here)
    # the images carry the body too: its marrow where value 7 is
    fat = nib.load(str(paths["fat"])).get_fdata()
    assert np.allclose(fat[v == 7], 0.6)
    paths, truth = sf.transitional_vertebra(tmp_path / "b", subject["water"], subject["fat"],
                                            subject["vertebrae"], extra_value=0)
    v = np.asarray(nib.load(str(paths["vertebrae"])).dataobj)
    assert set(np.unique(v)) == {0, 1, 2, 3, 4, 5, 6}
    k0, k1 = truth["extra_body_slices"]
    fat = nib.load(str(paths["fat"])).get_fdata()
    # unlabelled, but the images show a whole marrow body there, the size of L5
    assert np.isclose(fat[:, :, k0:k1], 0.6).sum() == (v == 5).sum()
    assert not np.any(v[:, :, k0:k1])


def test_vertebrae_out_of_order(tmp_path, subject):
    paths, truth = sf.vertebrae_out_of_order(tmp_path, subject["vertebrae"], 2, 4)
    assert truth["order_top_down"] == [1, 4, 3, 2, 5, 6]


def test_muscle_sides_swapped(tmp_path, subject):
    paths, truth = sf.muscle_sides_swapped(tmp_path, subject["labels_truth"])
    lab = np.asarray(nib.load(str(paths["labels"])).dataobj)
    aff = nib.load(str(paths["labels"])).affine
    for left, right in truth["pairs"]:  # *_left values now on the patient's right (RAS +x)
        assert sf._world(aff, np.argwhere(lab == left))[:, 0].mean() > 0
        assert sf._world(aff, np.argwhere(lab == right))[:, 0].mean() < 0


def test_oblique_slab_is_really_tilted(tmp_path, subject):
    paths, truth = sf.oblique_slab(tmp_path, subject["water"], subject["fat"],
                                   subject["labels_truth"], subject["vertebrae"], angle_deg=20)
    img = nib.load(str(paths["vertebrae"]))
    normal = img.affine[:3, 2]
    tilt = np.degrees(np.arccos(abs(normal @ [0, 0, 1]) / np.linalg.norm(normal)))
    assert tilt == pytest.approx(20, abs=1e-6) and truth["tilt_from_superior_deg"] == pytest.approx(20)
    # a landmark keeps its world position: the centre of L3 in both volumes
    v0 = nib.load(str(subject["vertebrae"]))
    c0 = sf._world(v0.affine, np.argwhere(np.asarray(v0.dataobj) == 3).mean(axis=0))
    c1 = sf._world(img.affine, np.argwhere(np.asarray(img.dataobj) == 3).mean(axis=0))
    assert np.linalg.norm(c0 - c1) < 1.5
    # vertical cylinders cut at 20 degrees: the tilted section is 1/cos(20) larger. Per row the
    # nearest-neighbour label resampling on 4 mm voxels moves a small section by several
    # voxels, so the check is on the sum over all muscles and levels.
    rows = truth["csa"]
    assert len(rows) == 8 * 5 and all(r["csa_mm2_perpendicular"] > 0 for r in rows)
    ratio = sum(r["csa_mm2_on_tilted_slices"] for r in rows) / sum(
        r["csa_mm2_perpendicular"] for r in rows)
    assert ratio == pytest.approx(1 / np.cos(np.radians(20)), rel=0.05)
    # the perpendicular truth is the drawn cylinder area, voxel-exact on the input grid
    psoas = [r["csa_mm2_perpendicular"] for r in rows if r["value"] == 1]
    assert np.allclose(psoas, psoas[0]) and psoas[0] == pytest.approx(np.pi * 12 ** 2, rel=0.1)


@pytest.mark.parametrize("vendor", sorted(sf.DIXON_IMAGE_TYPE))
def test_clean_water_fat_series_carry_the_vendor_image_type(tmp_path, subject, vendor):
    paths, truth = sf.dicom_water_fat(tmp_path, subject["water"], subject["fat"], vendor=vendor)
    for role in ("water", "fat"):
        dss = [pydicom.dcmread(str(p), stop_before_pixels=True) for p in paths[role].glob("*.dcm")]
        assert len(dss) == SHAPE[2]
        assert {tuple(d.ImageType) for d in dss} == {tuple(sf.DIXON_IMAGE_TYPE[vendor][role])}
        assert {d.SeriesInstanceUID for d in dss} == {truth[role]["series_uid"]}
        assert dss[0].Manufacturer == sf.MANUFACTURER[vendor]
    assert truth["water"]["series_uid"] != truth["fat"]["series_uid"]


def test_whole_swap_and_clean_noise_counterpart(tmp_path, subject):
    paths, _ = sf.water_fat_swapped(tmp_path / "swap", subject["water"], subject["fat"])
    assert np.array_equal(nib.load(str(paths["water"])).get_fdata(),
                          nib.load(str(subject["fat"])).get_fdata())
    paths, truth = sf.rician_noise(tmp_path / "noise", subject["water"], subject["fat"],
                                   sigma=0.05, seed=2)
    w0 = nib.load(str(subject["water"])).get_fdata()
    w = nib.load(str(paths["water"])).get_fdata()
    air = w0 == 0  # Rayleigh background: mean sigma * sqrt(pi / 2) (Gudbjartsson & Patz 1995)
    assert np.mean(w[air]) == pytest.approx(0.05 * np.sqrt(np.pi / 2), rel=0.03)
    assert truth["sigma"] == 0.05

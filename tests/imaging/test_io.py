"""Loading: canonical orientation whatever the storage, DICOM geometry, and bad files."""
import gzip

import nibabel as nib
import numpy as np
import pytest

from imaging.io import load_image
from imaging.phantom import _reorient
from lumbar_twin.errors import InputError


def write(path, data, affine, sform_only=False):
    img = nib.Nifti1Image(data, affine)
    if sform_only:
        img.set_qform(None, code=0)
        img.set_sform(affine, code=2)
    nib.save(img, str(path))
    return path


@pytest.mark.parametrize("codes", [("L", "P", "S"), ("P", "I", "R"), ("A", "R", "I")])
def test_any_storage_orientation_loads_to_the_same_canonical_volume(tmp_path, codes):
    rng = np.random.default_rng(0)
    data = rng.random((12, 10, 8)).astype(np.float32)
    affine = np.diag([0.8, 0.9, 4.0, 1.0])
    affine[:3, 3] = [10, -20, 30]
    reference = load_image(write(tmp_path / "ras.nii.gz", data, affine))
    stored, stored_affine = _reorient({"d": data}, affine, codes)
    other = load_image(write(tmp_path / "other.nii.gz", stored["d"], stored_affine, sform_only=True))
    np.testing.assert_array_equal(other.data, reference.data)
    np.testing.assert_allclose(other.affine, reference.affine, atol=1e-6)
    assert other.spacing_mm == pytest.approx((0.8, 0.9, 4.0))


def test_dicom_series_reads_like_the_nifti_and_keeps_no_identity(tmp_path):
    import SimpleITK as sitk

    rng = np.random.default_rng(1)
    volume = (rng.random((6, 20, 24)) * 1000).astype(np.int16)  # (z, y, x) for SimpleITK
    image = sitk.GetImageFromArray(volume)
    image.SetSpacing((0.9, 0.8, 4.0))
    image.SetOrigin((-10.0, 20.0, 5.0))
    folder = tmp_path / "dicom"
    folder.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(volume.shape[0]):
        section = image[:, :, k]
        for tag, value in (("0010|0010", "Doe^Jane"), ("0010|0020", "MRN-12345"), ("0010|0030", "19600101"),
                           ("0020|000e", "1.2.826.0.1.3680043.2.1125.1"), ("0020|0013", str(k + 1)),
                           ("0020|0032", "\\".join(map(str, image.TransformIndexToPhysicalPoint((0, 0, k))))),
                           ("0020|0037", "1\\0\\0\\0\\1\\0"), ("0018|0050", "4.0")):
            section.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(section)
    loaded = load_image(folder)
    assert loaded.shape == (24, 20, 6)
    assert loaded.spacing_mm == pytest.approx((0.9, 0.8, 4.0), rel=1e-4)
    # LPS x,y flip to RAS: canonical axis 0 runs to the right, i.e. reversed DICOM columns.
    np.testing.assert_array_equal(loaded.data, np.transpose(volume, (2, 1, 0))[::-1, ::-1, :])
    assert "Doe" not in repr(loaded) and "MRN" not in repr(loaded)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="water image not found"):
        load_image(tmp_path / "nope.nii.gz", "water image")


def test_truncated_gzip_is_reported(tmp_path):
    path = write(tmp_path / "w.nii.gz", np.ones((20, 20, 10), np.float32), np.eye(4))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="corrupt or truncated"):
        load_image(path)


def test_not_a_nifti(tmp_path):
    path = tmp_path / "w.nii.gz"
    path.write_bytes(gzip.compress(b"hello"))
    with pytest.raises(InputError, match="corrupt or truncated"):
        load_image(path)


def test_two_dimensional_image_is_refused(tmp_path):
    path = write(tmp_path / "w.nii", np.ones((20, 20), np.float32), np.eye(4))
    with pytest.raises(InputError, match="must be a 3-D volume"):
        load_image(path)


def test_nans_are_refused(tmp_path):
    data = np.ones((8, 8, 4), np.float32)
    data[2, 3, 1] = np.nan
    with pytest.raises(InputError, match="1 NaN or infinite voxels"):
        load_image(write(tmp_path / "w.nii.gz", data, np.eye(4)))

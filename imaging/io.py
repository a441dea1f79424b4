"""Reading images: NIfTI with nibabel, DICOM series with SimpleITK, one canonical orientation.

Every image is reoriented once, on load, to the closest canonical (RAS+) axes: array axis 0
runs to the patient's right, 1 anteriorly, 2 superiorly (axial slices along axis 2). The affine
keeps the physical geometry in mm, oblique stacks included. Nothing from a DICOM header but the
geometry is read: patient identity never enters the toolkit.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from imaging.dicom_series import read_dicom_volume
from imaging.input_checks import affine_difference, check_sform_qform
from lumbar_twin.errors import InputError

NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclass(frozen=True)
class Image:
    """Voxel data in canonical (RAS+) orientation, its affine (voxel -> mm) and where it came from."""

    data: np.ndarray
    affine: np.ndarray
    source: str
    #: The grid the file was stored on (shape, affine), to write results back onto it.
    stored_shape: tuple[int, int, int] = ()
    stored_affine: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))

    def to_nifti(self) -> nib.Nifti1Image:
        return nib.Nifti1Image(self.data, self.affine)

    def content_hash(self) -> str:
        """A pseudonym derived from the pixels alone (never from headers)."""
        return hashlib.sha256(np.ascontiguousarray(self.data, dtype=np.float32).tobytes()).hexdigest()[:12]


def load_image(path: str | Path, what: str = "image", dixon: str | None = None) -> Image:
    """Read a NIfTI file or a DICOM series folder as a canonical 3-D image, checked
    (imaging.input_checks: a NIfTI's sform against its qform; a DICOM stack's slice positions).

    dixon: "water" or "fat" picks that Dixon image out of a DICOM folder holding several by
    their Image Type (imaging.dicom_series); ignored for NIfTI. Raises InputError naming the file."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, f"{what} not found")
    if path.is_dir():
        img = read_dicom_volume(path, dixon, what)
    elif path.name.lower().endswith(NIFTI_SUFFIXES):
        img = _read_nifti(path, what)
    else:
        raise InputError(path, f"unsupported {what} format: expected .nii, .nii.gz or a DICOM folder")
    return _checked(img, path, what)


def label_values(image: Image, what: str = "label map") -> np.ndarray:
    """A label map's values as integers. Values off a whole number (a map resampled with linear
    interpolation: 1.5 where labels 1 and 2 meet) stop with InputError naming the file, instead
    of being rounded into the neighbouring label."""
    data = np.asarray(image.data)
    values = np.rint(data)
    off = np.abs(data - values) > 1e-3
    if off.any():
        examples = ", ".join(f"{v:g}" for v in np.unique(data[off])[:4])
        raise InputError(image.source, f"the {what} holds values that are not whole numbers ({int(off.sum())} "
                                       f"voxels, e.g. {examples}): resampled with interpolation? Resample label "
                                       "maps with nearest neighbour")
    return values.astype(np.int64)


def same_grid(a: Image, b: Image, tolerance_mm: float = 1e-3) -> bool:
    return a.shape == b.shape and np.allclose(a.affine, b.affine, atol=tolerance_mm)


def save_on_input_grid(labels: np.ndarray, like: Image, path: str | Path, dtype=np.uint8) -> None:
    """Write a canonical-orientation array (a label map by default) back on the grid and affine
    `like` was stored on, that affine (the one the input was read with) in both the sform and
    the qform; the qform's code is 0 only where that matrix has a shear a quaternion cannot hold."""
    canonical = nib.orientations.axcodes2ornt(("R", "A", "S"))
    stored = nib.orientations.io_orientation(like.stored_affine)
    back = nib.orientations.apply_orientation(labels.astype(dtype),
                                              nib.orientations.ornt_transform(canonical, stored))
    image = nib.Nifti1Image(np.ascontiguousarray(back), like.stored_affine)
    image.set_sform(like.stored_affine, code=1)
    image.set_qform(like.stored_affine, code=1)
    angle, offset, zoom = affine_difference(image.get_qform(), like.stored_affine)
    if max(angle, offset, zoom) > 1e-5:
        image.set_qform(like.stored_affine, code=0)
    nib.save(image, str(path))


def _read_nifti(path: Path, what: str = "image") -> nib.Nifti1Image:
    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj, dtype=np.float32)  # forces a full read: truncation shows here
    except Exception as exc:  # nibabel, gzip and zlib raise many types for broken files
        raise InputError(path, f"cannot read as NIfTI (corrupt or truncated?): {exc.__class__.__name__}") from None
    check_sform_qform(img.header, path, what)
    return nib.Nifti1Image(data, img.affine)


def _checked(img: nib.Nifti1Image, path: Path, what: str) -> Image:
    data = np.asarray(img.dataobj, dtype=np.float32)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
        img = nib.Nifti1Image(data, img.affine)
    if data.ndim != 3 or min(data.shape) < 2:
        raise InputError(path, f"{what} must be a 3-D volume, got shape {data.shape}")
    if not np.all(np.isfinite(data)):
        raise InputError(path, f"{what} contains {int(np.sum(~np.isfinite(data)))} NaN or infinite voxels")
    if abs(np.linalg.det(img.affine[:3, :3])) < 1e-9:
        raise InputError(path, f"{what} has a degenerate affine (zero voxel size)")
    canonical = nib.as_closest_canonical(img)
    return Image(np.asarray(canonical.dataobj, dtype=np.float32), canonical.affine.copy(), str(path),
                 tuple(data.shape), img.affine.copy())

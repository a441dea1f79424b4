"""Geometry checks on input images, made before anything is measured (docs/imaging.md,
"What is checked on input").

- A NIfTI header holds two voxel-to-world matrices, the sform and the qform, each with a code
  saying whether it is set. Where both are set and disagree, nobody can tell which one the
  scanner meant (nibabel reads the sform, other tools the qform): `check_sform_qform` stops.
  Differences below `AFFINE_TOLERANCE_MM` / `AFFINE_TOLERANCE_RAD` pass: the qform is stored as a
  float32 quaternion and offsets, so a header written from one matrix disagrees with itself by
  about 1e-5 mm over a 400 mm field of view.
- Slices of a DICOM series must lie evenly along their normal, one per position, without a
  sideways drift: `check_slice_positions` stops with the expected and found spacing and where
  the fault is (a missing slice shows as a gap of about two spacings). Nothing is resampled: a
  missing slice would have to be invented.
- Dixon water and fat holding identical pixel data are one series read twice
  (`check_distinct_dixon`): stop.
"""
from __future__ import annotations

import numpy as np

from lumbar_twin.errors import InputError

#: Largest difference between sform and qform that is taken as the same matrix: origin and
#: voxel size (mm), angle between corresponding axes (rad). Far above float32 rounding of the
#: qform (about 1e-7 relative), far below anything that moves a voxel.
AFFINE_TOLERANCE_MM = 1e-3
AFFINE_TOLERANCE_RAD = 1e-4
#: Slice spacing along the normal may vary by this share of the median spacing (DICOM stores
#: positions as decimal strings of at most 16 characters; scanners' own rounding is far below it).
SPACING_TOLERANCE = 0.01
#: A slice may drift sideways (in its own plane) by this much from the line of the others (mm).
DRIFT_TOLERANCE_MM = 0.01


def affine_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(largest angle between corresponding axes in rad, origin distance in mm, largest voxel
    size difference in mm) between two 4 x 4 voxel-to-world matrices."""
    za, zb = np.linalg.norm(a[:3, :3], axis=0), np.linalg.norm(b[:3, :3], axis=0)
    cosines = np.sum((a[:3, :3] / za) * (b[:3, :3] / zb), axis=0)
    angle = float(np.max(np.arccos(np.clip(cosines, -1.0, 1.0))))
    return angle, float(np.linalg.norm(a[:3, 3] - b[:3, 3])), float(np.max(np.abs(za - zb)))


def check_sform_qform(header, path, what: str = "image") -> None:
    """Stop where a NIfTI header's sform and qform are both set and disagree.

    header: a nibabel Nifti1Header / Nifti2Header. Raises InputError naming the file, the
    angle between the two matrices' axes (degrees), the distance between their origins and the
    difference in voxel size (mm)."""
    if int(header["sform_code"]) <= 0 or int(header["qform_code"]) <= 0:
        return
    angle, offset, zoom = affine_difference(header.get_sform(), header.get_qform())
    if angle <= AFFINE_TOLERANCE_RAD and offset <= AFFINE_TOLERANCE_MM and zoom <= AFFINE_TOLERANCE_MM:
        return
    raise InputError(path, f"{what}: the NIfTI sform and qform are both set (codes {int(header['sform_code'])} and "
                           f"{int(header['qform_code'])}) and disagree by {np.degrees(angle):.3g} degrees between "
                           f"their axes, {offset:.3g} mm between their origins and {zoom:.3g} mm in voxel size; "
                           "which one is right cannot be told: fix the header (or set the wrong one's code to 0)")


def check_slice_positions(positions_mm: np.ndarray, normal: np.ndarray, source, what: str = "image") -> float:
    """Slice spacing (mm) of a stack whose slices' corner positions are `positions_mm`
    ((n, 3), world mm, any order), checked along the slice `normal` (unit 3-vector).

    Raises InputError for fewer than two slices, two slices at one position, uneven spacing
    (a missing slice) or a sideways drift (sheared stack, e.g. CT gantry tilt), naming where."""
    positions_mm = np.asarray(positions_mm, float)
    n = len(positions_mm)
    if n < 2:
        raise InputError(source, f"{what}: a volume needs at least two slices, found {n}")
    along = positions_mm @ normal
    order = np.argsort(along)
    along, positions_mm = along[order], positions_mm[order]
    gaps = np.diff(along)
    if np.any(gaps < DRIFT_TOLERANCE_MM):
        k = int(np.argmax(gaps < DRIFT_TOLERANCE_MM))
        raise InputError(source, f"{what}: two images at one slice position ({along[k]:.2f} mm along the slice "
                                 "normal): more than one image per position that nothing tells apart")
    expected = float(np.median(gaps))
    off = np.abs(gaps - expected) > SPACING_TOLERANCE * expected
    if np.any(off):
        k = int(np.argmax(np.abs(gaps - expected)))
        missing = gaps[k] / expected - 1
        hint = f" (about {round(missing)} missing slice{'s' if round(missing) > 1 else ''})" \
            if missing > 0.5 and abs(missing - round(missing)) < 0.1 else ""
        raise InputError(source, f"{what}: uneven slice spacing along the slice normal: expected {expected:.3f} mm, "
                                 f"found {gaps[k]:.3f} mm between slices {k + 1} and {k + 2} of {n} (at "
                                 f"{along[k]:.2f} and {along[k + 1]:.2f} mm){hint}; {int(off.sum())} uneven "
                                 "gap(s) in all; nothing was resampled")
    sideways = positions_mm - np.outer(along, normal)
    shift = np.linalg.norm(sideways - sideways[0], axis=1)
    if np.any(shift > DRIFT_TOLERANCE_MM + SPACING_TOLERANCE * expected):
        k = int(np.argmax(shift))
        raise InputError(source, f"{what}: slice {k + 1} of {n} is shifted {shift[k]:.3f} mm in its own plane from "
                                 "the first (a sheared stack, e.g. gantry tilt): not supported")
    return expected


def check_distinct_dixon(water, fat) -> None:
    """Stop where the water and fat images (imaging.io.Image) hold the same pixel data: one
    series read twice (fat fraction 0.5 everywhere), never a Dixon pair."""
    if water.data.shape == fat.data.shape and np.array_equal(water.data, fat.data):
        raise InputError(fat.source, f"fat image: the same pixel data as the water image {water.source}: one series "
                                     "read twice, not a Dixon water and fat pair")

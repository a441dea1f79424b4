"""Faulty medical-image files as scanners and archives write them, with the truth about each fault.

Test-data generators, written from the file-format specifications and published vendor
conventions only (not from the reader they test). Every function writes into a given folder
and returns ``(paths, truth)``: ``paths`` a dict of the files or folders written, ``truth`` a
small dict of plain Python values saying what the fault is (an angle, a missing slice's index
and position, a swapped region's mask, ...).

Inputs are images: a path to a NIfTI file, a ``nibabel`` image, or ``(array, affine)`` with a
4 x 4 affine from voxel indices to RAS+ millimetres (NIfTI's world: x grows toward the
patient's Right, y Anterior, z Superior). DICOM patient coordinates are LPS+ (PS3.3
C.7.6.2.1.1: x toward the patient's Left, y Posterior, z Superior); ``_ras_to_lps`` flips x
and y between the two.

Only numpy, scipy, nibabel and pydicom are used: the generators must not share code with the
toolkit under test.

Label conventions (docs/imaging.md): muscles psoas left/right = 1/2, quadratus lumborum 3/4,
erector spinae 5/6, multifidus 7/8; vertebral bodies L1..L5 = 1..5, S1 = 6.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

MUSCLE_VALUES = {
    1: ("psoas", "left"), 2: ("psoas", "right"),
    3: ("quadratus_lumborum", "left"), 4: ("quadratus_lumborum", "right"),
    5: ("erector_spinae", "left"), 6: ("erector_spinae", "right"),
    7: ("multifidus", "left"), 8: ("multifidus", "right"),
}
LEFT_RIGHT_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8))
VERTEBRA_VALUES = {"L1": 1, "L2": 2, "L3": 3, "L4": 4, "L5": 5, "S1": 6}
LEVELS = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")

# TotalSegmentator task "total_mr" (v2), class_map["total_mr"] in
# totalsegmentator/map_to_binary.py (github.com/wasserth/TotalSegmentator): one value for all
# vertebrae, sacrum separate, vessels 23-29. Only the classes drawn here are listed.
TOTALSEG_MR = {
    "sacrum": 18, "vertebrae": 19, "intervertebral_discs": 20,
    "aorta": 23, "inferior_vena_cava": 24,
    "iliac_artery_left": 26, "iliac_artery_right": 27,
    "iliac_vena_left": 28, "iliac_vena_right": 29,
}

# ImageType (0008,0008) of Dixon reconstructions as the vendors write them (PS3.3 C.7.6.1.1.2:
# value 1 ORIGINAL/DERIVED, value 2 PRIMARY/SECONDARY, values 3+ implementation specific).
# - Siemens Dixon (VIBE Dixon, syngo VE/XA): DERIVED\PRIMARY\DIXON\WATER and ...\FAT, as public
#   QC scripts check it ('DERIVED\PRIMARY\DIXON\WATER') and as XA exports log it (value 4 WATER).
# - Philips mDIXON classic DICOM export: DERIVED\PRIMARY\W\W\DERIVED and DERIVED\PRIMARY\F\F\DERIVED,
#   water, fat, in- and opposed-phase in ONE series (D. Atkinson's Philips DICOM readers,
#   e.g. d2mat's 'DERIVED\PRIMARY\W\W\DERIVED' ... 'OP\OP\DERIVED').
# - GE LAVA-Flex / IDEAL (SIGNA Artist/Explorer exports): DERIVED\PRIMARY\DIXON\WATER\MAGNITUDE.
DIXON_IMAGE_TYPE = {
    "siemens": {"water": ["DERIVED", "PRIMARY", "DIXON", "WATER"],
                "fat": ["DERIVED", "PRIMARY", "DIXON", "FAT"]},
    "philips": {"water": ["DERIVED", "PRIMARY", "W", "W", "DERIVED"],
                "fat": ["DERIVED", "PRIMARY", "F", "F", "DERIVED"]},
    "ge": {"water": ["DERIVED", "PRIMARY", "DIXON", "WATER", "MAGNITUDE"],
           "fat": ["DERIVED", "PRIMARY", "DIXON", "FAT", "MAGNITUDE"]},
}
# Philips mDIXON in- and opposed-phase reconstructions, same sources as the W/F pair above.
PHILIPS_PHASE_IMAGE_TYPE = {"in_phase": ["DERIVED", "PRIMARY", "IP", "IP", "DERIVED"],
                            "opposed_phase": ["DERIVED", "PRIMARY", "OP", "OP", "DERIVED"]}
MANUFACTURER = {"siemens": "SIEMENS", "philips": "Philips Medical Systems",
                "ge": "GE MEDICAL SYSTEMS"}
# Three-plane localiser (scout). PS3.3 defines LOCALIZER as ImageType value 3 only for CT
# (C.8.2.1.1.1); for MR value 3 is free, and a Siemens MR localiser is an ordinary
# ORIGINAL\PRIMARY\M\NORM\DIS2D series: converters spot it only because the orientation
# varies within the series (dcm2niix "Slices not stacked: orientation varies (vNav or
# localizer?) [1 0 0 0 1 0] != [0 1 0 0 0 -1]", github.com/rordenlab/dcm2niix issue 404).
LOCALIZER_IMAGE_TYPE = {"siemens": ["ORIGINAL", "PRIMARY", "M", "NORM", "DIS2D"],
                        "labelled": ["ORIGINAL", "PRIMARY", "LOCALIZER"]}

# Obviously fake, identifying-looking identity: tests check it never reaches an output.
FAKE_IDENTITY = {"PatientName": "DOE^JANE", "PatientID": "MRN-123456",
                 "PatientBirthDate": "19700101", "PatientSex": "F",
                 "AccessionNumber": "ACC-987654", "InstitutionName": "ST ELSEWHERE HOSPITAL",
                 "ReferringPhysicianName": "HOUSE^GREGORY"}


# ----------------------------------------------------------------------------- images


def _load(image):
    """(data ndarray, affine (4, 4) float64) from a path, a nibabel image or (data, affine)."""
    if isinstance(image, (str, Path)):
        image = nib.load(str(image))
    if isinstance(image, nib.spatialimages.SpatialImage):
        return np.asanyarray(image.dataobj), np.array(image.affine, dtype=float)
    data, affine = image
    return np.asarray(data), np.array(affine, dtype=float)


def _save(path, data, affine, qform_code=1, sform_code=1):
    """NIfTI-1 with qform and sform both set from ``affine`` (codes as given)."""
    img = nib.Nifti1Image(np.asarray(data), affine)
    img.set_qform(affine, code=int(qform_code))
    img.set_sform(affine, code=int(sform_code))
    nib.save(img, str(path))
    return Path(path)


def _world(affine, ijk):
    ijk = np.asarray(ijk, dtype=float)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def _slice_axis(affine):
    """The array axis closest to superior (the axial stack's slice axis)."""
    dirs = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    return int(np.argmax(np.abs(dirs[2])))


def _rotation(axis, angle_rad):
    """Rodrigues rotation matrix about unit ``axis`` by ``angle_rad`` (right hand)."""
    u = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    k = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
    return np.eye(3) + np.sin(angle_rad) * k + (1 - np.cos(angle_rad)) * (k @ k)


def _angle_deg(a, b):
    a = np.asarray(a, float) / np.linalg.norm(a)
    b = np.asarray(b, float) / np.linalg.norm(b)
    return float(np.degrees(np.arccos(np.clip(abs(a @ b), -1.0, 1.0))))


def body_mask(water, fat, fraction=0.2):
    """Body of a Dixon pair: smoothed W + F above ``fraction`` of its 99th percentile, the
    largest connected part, holes filled. Returns (X, Y, Z) bool."""
    total = ndimage.gaussian_filter(np.asarray(water, float) + np.asarray(fat, float), 1.0)
    mask = total > fraction * np.percentile(total, 99)
    lab, n = ndimage.label(mask)
    if n > 1:
        sizes = ndimage.sum(mask, lab, range(1, n + 1))
        mask = lab == (1 + int(np.argmax(sizes)))
    return ndimage.binary_fill_holes(mask)


# ----------------------------------------------------------------------------- 1. NIfTI headers


def sform_qform_disagree(out_dir, water, fat, angle_deg=90.0, which=("water", "fat"),
                         qform_code=1, sform_code=2, tiny=False,
                         tiny_offset_mm=1e-5, tiny_angle_rad=1e-6):
    """NIfTI pair whose qform and sform both claim validity and disagree.

    NIfTI-1 (nifti1.h, "3 methods to map voxel coordinates"): method 2 is the qform
    (``qform_code`` > 0; ``quatern_b/c/d``, ``qoffset_x/y/z``, ``pixdim`` with qfac), method 3
    the sform (``sform_code`` > 0; ``srow_x/y/z``); codes 1 = scanner anat, 2 = aligned anat.
    The standard allows both and does not say which wins when they differ (nibabel prefers the
    sform, SimpleITK/ITK the qform unless the sform is near it): a reader must refuse or
    choose knowingly. Here the sform is the input affine and the qform is it rotated by
    ``angle_deg`` about the slice axis (the grid's axis closest to superior) through the
    volume centre; files in ``which`` get the disagreement, the others agree.

    ``tiny=True`` instead writes the float-rounding case a reader must accept: the qform
    offset by ``tiny_offset_mm`` along x and rotated by ``tiny_angle_rad``, far below the
    float32 precision of the stored header (srow and quatern are float32: ~1.5e-5 mm at
    200 mm).

    Returns ``(paths, truth)``: paths ``water``, ``fat``; truth ``angle_deg`` (the requested
    rotation), ``measured_angle_deg`` per file (read back from the written headers),
    ``max_offset_mm`` (largest distance between qform and sform positions of the volume's
    corners) per file, ``which``, the codes.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths, measured, offsets = {}, {}, {}
    for name, src in (("water", water), ("fat", fat)):
        data, aff = _load(src)
        q_aff = aff.copy()
        if name in which:
            centre = _world(aff, (np.array(data.shape[:3]) - 1) / 2.0)
            axis = aff[:3, _slice_axis(aff)]
            if tiny:
                rot = _rotation(axis, tiny_angle_rad)
                shift = np.array([tiny_offset_mm, 0.0, 0.0])
            else:
                rot = _rotation(axis, np.radians(angle_deg))
                shift = np.zeros(3)
            q_aff[:3, :3] = rot @ aff[:3, :3]
            q_aff[:3, 3] = rot @ (aff[:3, 3] - centre) + centre + shift
        img = nib.Nifti1Image(data, aff)
        img.set_sform(aff, code=int(sform_code))
        img.set_qform(q_aff, code=int(qform_code))
        path = out / f"{name}.nii.gz"
        nib.save(img, str(path))
        back = nib.load(str(path))
        q, s = back.get_qform(), back.get_sform()
        rel = q[:3, :3] @ np.linalg.inv(s[:3, :3])
        measured[name] = float(np.degrees(np.arccos(np.clip((np.trace(rel) - 1) / 2, -1, 1))))
        corners = np.array(np.meshgrid(*[[0, n - 1] for n in data.shape[:3]])).reshape(3, -1).T
        offsets[name] = float(np.max(np.linalg.norm(_world(q, corners) - _world(s, corners), axis=1)))
        paths[name] = path
    truth = {"angle_deg": 0.0 if tiny else float(angle_deg),
             "tiny": bool(tiny), "tiny_offset_mm": tiny_offset_mm if tiny else 0.0,
             "tiny_angle_rad": tiny_angle_rad if tiny else 0.0,
             "which": list(which), "measured_angle_deg": measured, "max_offset_mm": offsets,
             "qform_code": int(qform_code), "sform_code": int(sform_code)}
    return paths, truth


# ----------------------------------------------------------------------------- DICOM writing


def _ras_to_lps(v):
    v = np.array(v, dtype=float)
    v[..., :2] *= -1
    return v


def _uid(*parts):
    """Deterministic DICOM UID under pydicom's root (PS3.5 9.1: digits and dots, <= 64 chars)."""
    from pydicom.uid import generate_uid
    return str(generate_uid(entropy_srcs=[str(p) for p in parts]))


def _ds(x):
    """Decimal String value (PS3.5 6.2: at most 16 characters)."""
    s = f"{float(x):.10g}"
    if len(s) > 16:
        s = f"{float(x):.8g}"
    return s if len(s) <= 16 else f"{float(x):.6e}"


def _grid_geometry(affine):
    """Image Plane attributes (PS3.3 C.7.6.2) of an axial-style grid stored slice by slice.

    Each slice k is ``data[:, :, k]`` written with rows along array axis 1 and columns along
    axis 0, so ``pixel_array[r, c] = data[c, r, k]``; then (C.7.6.2.1.1) the row direction
    cosine (first three of ImageOrientationPatient: the direction of increasing column index)
    is axis 0's direction, the column cosine axis 1's, PixelSpacing = [row spacing (axis 1),
    column spacing (axis 0)], all in LPS. Returns (iop (6,), pixel_spacing (2,), normal (3,),
    step (3,) LPS mm between slices, origin (3,) LPS of voxel (0, 0, 0)).
    """
    lps = _ras_to_lps(affine[:3, :3].T).T  # columns are the axes' steps in LPS
    row = lps[:, 0] / np.linalg.norm(lps[:, 0])
    col = lps[:, 1] / np.linalg.norm(lps[:, 1])
    if abs(row @ col) > 1e-4:
        raise ValueError("sheared in-plane axes cannot be written as DICOM Image Plane")
    normal = np.cross(row, col)
    step = lps[:, 2]
    if np.linalg.norm(np.cross(step / np.linalg.norm(step), normal)) > 1e-4:
        raise ValueError("slice axis not perpendicular to the slices (gantry tilt) - not written")
    spacing = [float(np.linalg.norm(lps[:, 1])), float(np.linalg.norm(lps[:, 0]))]
    origin = _ras_to_lps(affine[:3, 3])
    return np.concatenate([row, col]), spacing, normal, step, origin


class _Series:
    """Identity and acquisition attributes shared by the files of one series."""

    def __init__(self, study_uid, series_uid, series_number, vendor, description,
                 frame_uid, image_type, slope, acquisition="3D"):
        self.study_uid, self.series_uid = study_uid, series_uid
        self.series_number, self.vendor = int(series_number), vendor
        self.description, self.frame_uid = description, frame_uid
        self.image_type, self.slope = list(image_type), float(slope)
        self.acquisition = acquisition


def _slope_for(volume, max_stored=4095):
    """RescaleSlope so the volume's maximum maps to ``max_stored`` (12-bit range, as Siemens
    and GE store 16-bit words)."""
    vmax = float(np.max(volume)) if np.size(volume) else 1.0
    return (vmax if vmax > 0 else 1.0) / max_stored


def _write_image(path, series, pixels, ipp_lps, iop, pixel_spacing, thickness, spacing_between,
                 instance_number, image_type=None):
    """One MR Image Storage file (PS3.3 A.4: Patient, General Study, General Series, Frame of
    Reference, General Equipment, General Image C.7.6.1, Image Plane C.7.6.2, Image Pixel
    C.7.6.3, MR Image C.8.3.1, SOP Common). ``pixels`` (rows, columns) float, stored as
    unsigned 16-bit with RescaleSlope/RescaleIntercept (value = stored * slope + intercept)."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, PYDICOM_IMPLEMENTATION_UID

    sop_uid = _uid(series.series_uid, instance_number, "sop")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    if int(pydicom.__version__.split(".")[0]) < 3:
        ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.SpecificCharacterSet = "ISO_IR 100"
    for key, value in FAKE_IDENTITY.items():
        setattr(ds, key, value)
    ds.StudyInstanceUID = series.study_uid
    ds.StudyDate, ds.StudyTime, ds.StudyID = "20260115", "101500", "4711"
    ds.SeriesDate, ds.SeriesTime = "20260115", f"10{series.series_number % 60:02d}00"
    ds.Modality = "MR"
    ds.Manufacturer = MANUFACTURER[series.vendor]
    ds.SeriesInstanceUID = series.series_uid
    ds.SeriesNumber = series.series_number
    ds.SeriesDescription = series.description
    ds.FrameOfReferenceUID = series.frame_uid
    ds.PositionReferenceIndicator = ""
    ds.PatientPosition = "HFS"
    ds.BodyPartExamined = "LSPINE"
    ds.ImageType = list(image_type or series.image_type)
    ds.InstanceNumber = int(instance_number)
    ds.AcquisitionNumber = 1
    ds.ImagePositionPatient = [_ds(v) for v in ipp_lps]
    ds.ImageOrientationPatient = [_ds(v) for v in iop]
    ds.PixelSpacing = [_ds(v) for v in pixel_spacing]
    ds.SliceThickness = _ds(thickness)
    if spacing_between is not None:
        ds.SpacingBetweenSlices = _ds(spacing_between)
    normal = np.cross(iop[:3], iop[3:])
    ds.SliceLocation = _ds(float(np.asarray(ipp_lps) @ normal))
    # MR Image module C.8.3.1 (Type 1/2 attributes of a 2-point gradient-echo Dixon).
    ds.ScanningSequence = "GR"
    ds.SequenceVariant = "SP"
    ds.ScanOptions = ""
    ds.MRAcquisitionType = series.acquisition
    ds.RepetitionTime, ds.EchoTime, ds.EchoTrainLength = "6.5", "2.4", "1"
    ds.EchoNumbers = "1"
    ds.MagneticFieldStrength = "3"
    ds.ImagedNucleus = "1H"
    ds.FlipAngle = "9"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 0
    ds.RescaleIntercept, ds.RescaleSlope = "0", _ds(series.slope)
    ds.RescaleType = "US"
    stored = np.clip(np.rint(np.asarray(pixels, float) / series.slope), 0, 65535).astype("<u2")
    ds.PixelData = stored.tobytes()
    ds.save_as(str(path), enforce_file_format=True) if int(pydicom.__version__[0]) >= 3 \
        else ds.save_as(str(path), write_like_original=False)
    return sop_uid


def _file_name(folder, sop_uid):
    # Archives name files by UID or at random: the order of names says nothing of geometry.
    return Path(folder) / ("IM" + hashlib.sha1(sop_uid.encode()).hexdigest()[:12] + ".dcm")


def _write_volume(folder, data, affine, series, slices=None, positions_mm=None,
                  instance_start=1, instance_step=1, image_type=None):
    """Write slices of ``data`` (X, Y, Z) as one series; returns the file paths in slice order.

    ``slices``: which k to write (default all). ``positions_mm``: per written slice, the
    position along the slice axis from voxel 0 (default k * spacing): only the header moves,
    the caller supplies matching pixels through ``data``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    iop, spacing, normal, step, origin = _grid_geometry(affine)
    dz = float(np.linalg.norm(step))
    unit = step / dz
    ks = list(range(data.shape[2])) if slices is None else list(slices)
    files = []
    for n, k in enumerate(ks):
        pos = k * dz if positions_mm is None else positions_mm[n]
        ipp = origin + unit * pos
        sop = _uid(series.series_uid, instance_start + n * instance_step, "sop")
        path = _file_name(folder, sop)
        _write_image(path, series, np.asarray(data[:, :, k], float).T, ipp, iop, spacing,
                     thickness=dz, spacing_between=dz,
                     instance_number=instance_start + n * instance_step, image_type=image_type)
        files.append(path)
    return files


def _new_series(study_uid, tag, number, vendor, description, frame_uid, image_type, volume):
    return _Series(study_uid, _uid(study_uid, tag, number), number, vendor, description,
                   frame_uid, image_type, _slope_for(volume))


def _positions_along_normal(affine, ks=None, positions_mm=None):
    iop, _, normal, step, origin = _grid_geometry(affine)
    dz = float(np.linalg.norm(step))
    unit = step / dz
    pos = [k * dz for k in ks] if positions_mm is None else list(positions_mm)
    return [float((origin + unit * p) @ normal) for p in pos]


def _study(seed, fault):
    """Study and frame-of-reference UIDs, distinct per fault so folders can be merged."""
    return _uid("study", seed, fault), _uid("frame", seed, fault)


# ----------------------------------------------------------------------------- 2. DICOM folders


def dicom_series(out_dir, image, role="water", vendor="siemens", series_number=3, seed=0):
    """A clean single MR Image Storage series of one 3-D image (the baseline).

    Geometry per PS3.3 C.7.6.2.1.1 (ImagePositionPatient of each slice's first pixel,
    ImageOrientationPatient row then column cosines, PixelSpacing row spacing then column
    spacing, all LPS); SliceThickness and SpacingBetweenSlices (C.8.3.1) equal the slice step.
    ImageType per ``DIXON_IMAGE_TYPE[vendor][role]`` (C.7.6.1.1.2). Pixel values as unsigned
    16-bit with RescaleSlope (value = stored * slope).

    Returns paths ``folder``, ``files`` (slice order); truth ``series_uid``, ``image_type``,
    ``n_slices``, ``positions_mm`` (along the slice normal), ``rescale_slope``, ``identity``.
    """
    data, aff = _load(image)
    study, frame = _study(seed, "dicom_series")
    s = _new_series(study, role, series_number, vendor, f"{role.upper()} Dixon",
                    frame, DIXON_IMAGE_TYPE[vendor][role], data)
    files = _write_volume(out_dir, data, aff, s)
    truth = {"series_uid": s.series_uid, "image_type": s.image_type, "n_slices": len(files),
             "positions_mm": _positions_along_normal(aff, range(data.shape[2])),
             "rescale_slope": s.slope, "identity": dict(FAKE_IDENTITY)}
    return {"folder": Path(out_dir), "files": files}, truth


def dicom_water_fat(out_dir, water, fat, vendor="siemens", seed=0):
    """Clean counterpart of the multi-series faults: water and fat as two series of one study,
    in sub-folders ``water/`` and ``fat/`` (ImageType per vendor, see ``DIXON_IMAGE_TYPE``).
    Returns paths ``water``, ``fat`` (folders); truth per role: ``series_uid``, ``image_type``."""
    out = Path(out_dir)
    study, frame = _study(seed, "dicom_water_fat")
    truth, paths = {}, {}
    for number, (role, src) in enumerate((("water", water), ("fat", fat)), start=3):
        data, aff = _load(src)
        s = _new_series(study, role, number, vendor, f"{role.upper()} Dixon", frame,
                        DIXON_IMAGE_TYPE[vendor][role], data)
        _write_volume(out / role, data, aff, s)
        paths[role] = out / role
        truth[role] = {"series_uid": s.series_uid, "image_type": s.image_type,
                       "n_slices": int(data.shape[2])}
    return paths, truth


def _localizer_images(data, aff, fov_mm=384.0, n_pixels=96, offsets_mm=(-20.0, 0.0, 20.0)):
    """Sagittal, coronal and axial planes through the volume centre, sampled from ``data``."""
    centre_ras = _world(aff, (np.array(data.shape[:3]) - 1) / 2.0)
    centre = _ras_to_lps(centre_ras)
    inv = np.linalg.inv(aff)
    planes = {  # (row cosine, column cosine) in LPS, as scanners orient the tri-plane scout
        "sagittal": ([0.0, 1.0, 0.0], [0.0, 0.0, -1.0]),
        "coronal": ([1.0, 0.0, 0.0], [0.0, 0.0, -1.0]),
        "axial": ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0]),
    }
    ps = fov_mm / n_pixels
    r = (np.arange(n_pixels) + 0.5 - n_pixels / 2) * ps
    out = []
    for name, (row, col) in planes.items():
        row, col = np.array(row), np.array(col)
        normal = np.cross(row, col)
        for off in offsets_mm:
            c = centre + normal * off
            rr, cc = np.meshgrid(r, r, indexing="ij")  # rr along columns (rows index), cc along rows
            pts_lps = c + cc[..., None] * row + rr[..., None] * col
            ijk = _ras_to_lps(pts_lps) @ inv[:3, :3].T + inv[:3, 3]
            img = ndimage.map_coordinates(np.asarray(data, float), ijk.reshape(-1, 3).T,
                                          order=1, cval=0.0).reshape(n_pixels, n_pixels)
            ipp = c - row * (n_pixels / 2 - 0.5) * ps - col * (n_pixels / 2 - 0.5) * ps
            out.append((name, img, ipp, np.concatenate([row, col]), [ps, ps]))
    return out


def dicom_localizer_water_fat(out_dir, water, fat, vendor="siemens", seed=0,
                              localizer_style="siemens"):
    """One folder holding a three-plane localiser series, a water series and a fat series.

    What a PACS export of a whole lumbar Dixon exam looks like: every series of the study in
    one folder, files named by UID. The localiser (scout) is one series of 9 images, 3
    sagittal, 3 coronal, 3 axial (C.7.6.2 geometry, other orientations than the Dixon stack,
    MRAcquisitionType 2D, SliceThickness 8 mm, no SpacingBetweenSlices) whose ImageType is
    ``LOCALIZER_IMAGE_TYPE[localizer_style]``: by default the Siemens MR form, which does not
    say "localizer" at all (only the varying orientation tells), or ``"labelled"``
    ORIGINAL\\PRIMARY\\LOCALIZER; water and fat are separate series with the vendor's ImageType
    (Siemens/GE style; see ``DIXON_IMAGE_TYPE``). Each series has its own SeriesInstanceUID
    and SeriesNumber (1 localiser, 3 water, 4 fat), one StudyInstanceUID and
    FrameOfReferenceUID.

    Returns paths ``folder``; truth ``series`` {uid: {role, image_type, n_images,
    series_number}}, ``water_series_uid``, ``fat_series_uid``, ``localizer_series_uid``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    study, frame = _study(seed, "dicom_localizer_water_fat")
    wdata, waff = _load(water)
    fdata, faff = _load(fat)
    series = {}
    loc = _localizer_images(wdata, waff)
    ls = _Series(study, _uid(study, "localizer"), 1, vendor, "localizer", frame,
                 LOCALIZER_IMAGE_TYPE[localizer_style], _slope_for(np.array([img.max() for _, img, *_ in loc])),
                 acquisition="2D")
    for n, (_, img, ipp, iop, ps) in enumerate(loc, start=1):
        sop = _uid(ls.series_uid, n, "sop")
        _write_image(_file_name(out, sop), ls, img, ipp, iop, ps, thickness=8.0,
                     spacing_between=None, instance_number=n)
    series[ls.series_uid] = {"role": "localizer", "image_type": ls.image_type,
                             "n_images": len(loc), "series_number": 1}
    roles = {}
    for number, (role, data, aff) in ((3, ("water", wdata, waff)), (4, ("fat", fdata, faff))):
        s = _new_series(study, role, number, vendor, f"{role.upper()} Dixon", frame,
                        DIXON_IMAGE_TYPE[vendor][role], data)
        _write_volume(out, data, aff, s)
        series[s.series_uid] = {"role": role, "image_type": s.image_type,
                                "n_images": int(data.shape[2]), "series_number": number}
        roles[role] = s.series_uid
    truth = {"series": series, "water_series_uid": roles["water"],
             "fat_series_uid": roles["fat"], "localizer_series_uid": ls.series_uid}
    return {"folder": out}, truth


def dicom_interleaved_dixon(out_dir, water, fat, vendor="philips", seed=0, with_phases=False):
    """One series (one SeriesInstanceUID) whose water and fat images alternate at each position.

    Philips mDIXON classic DICOM export writes the reconstructed types of one scan as one
    series: at every slice position a water image (ImageType DERIVED\\PRIMARY\\W\\W\\DERIVED)
    and a fat image (DERIVED\\PRIMARY\\F\\F\\DERIVED) with the same ImagePositionPatient, and
    with ``with_phases`` also in-phase (...\\IP\\IP\\DERIVED, W + F) and opposed-phase
    (...\\OP\\OP\\DERIVED, |W - F|) images. InstanceNumber runs through all (water, fat[, IP,
    OP] at each position in turn). Only ImageType (C.7.6.1.1.2 value 3+) tells them apart: a
    reader that stacks a series by position gets duplicates.

    Returns paths ``folder``; truth ``series_uid``, ``n_images``, ``n_positions``,
    ``instances`` {role: InstanceNumber list}, ``water_instances``, ``fat_instances``,
    ``image_type`` per role.
    """
    out = Path(out_dir)
    wdata, waff = _load(water)
    fdata, faff = _load(fat)
    if wdata.shape != fdata.shape or not np.allclose(waff, faff, atol=1e-4):
        raise ValueError("water and fat must share the grid")
    w64, f64 = np.asarray(wdata, float), np.asarray(fdata, float)
    images = {"water": w64, "fat": f64}
    types = dict(DIXON_IMAGE_TYPE[vendor])
    if with_phases:
        images.update(in_phase=w64 + f64, opposed_phase=np.abs(w64 - f64))
        types.update(PHILIPS_PHASE_IMAGE_TYPE)
    study, frame = _study(seed, "dicom_interleaved_dixon")
    s = _Series(study, _uid(study, "mdixon", with_phases), 5, vendor, "mDIXON", frame,
                types["water"], _slope_for(np.maximum.reduce(list(images.values()))))
    n, m = int(wdata.shape[2]), len(images)
    instances = {}
    for i, (role, data) in enumerate(images.items()):
        _write_volume(out, data, waff, s, instance_start=i + 1, instance_step=m,
                      image_type=types[role])
        instances[role] = [m * k + i + 1 for k in range(n)]
    truth = {"series_uid": s.series_uid, "n_images": m * n, "n_positions": n,
             "instances": instances, "water_instances": instances["water"],
             "fat_instances": instances["fat"],
             "image_type": {r: types[r] for r in images}}
    return {"folder": out}, truth


def dicom_mislabelled_pair(out_dir, water, fat, vendor="siemens", copy_of="water", seed=0):
    """Two series with identical pixel data but different ImageType (a mislabelled export).

    A PACS re-export or a post-processing node that writes one reconstruction twice under the
    water and fat ImageType (C.7.6.1.1.2), with new SeriesInstanceUIDs: both folders
    (``water/``, ``fat/``) hold the pixels of ``copy_of``. Fat fraction from such a pair is
    0.5 everywhere.

    Returns paths ``water``, ``fat`` (folders); truth ``copy_of``, ``series_uid`` per role,
    ``image_type`` per role, ``identical_pixels`` True.
    """
    out = Path(out_dir)
    src = {"water": water, "fat": fat}[copy_of]
    data, aff = _load(src)
    study, frame = _study(seed, "dicom_mislabelled_pair")
    truth = {"copy_of": copy_of, "identical_pixels": True, "series_uid": {}, "image_type": {}}
    paths = {}
    for number, role in ((3, "water"), (4, "fat")):
        s = _new_series(study, role, number, vendor, f"{role.upper()} Dixon", frame,
                        DIXON_IMAGE_TYPE[vendor][role], data)
        _write_volume(out / role, data, aff, s)
        paths[role] = out / role
        truth["series_uid"][role] = s.series_uid
        truth["image_type"][role] = s.image_type
    return paths, truth


# ----------------------------------------------------------------------------- 3. slice gaps


def dicom_missing_slice(out_dir, image, missing_index=None, role="water", vendor="siemens",
                        seed=0):
    """A series with one slice position deleted (a file lost in transfer or archiving).

    SpacingBetweenSlices (C.8.3.1) still states the nominal step, so the positions
    (ImagePositionPatient projected on the normal of ImageOrientationPatient, C.7.6.2.1.1)
    have one gap of twice the step. Default: the middle slice.

    Returns paths ``folder``; truth ``missing_index`` (k on the input grid),
    ``missing_position_mm`` (along the slice normal, LPS), ``missing_ipp_lps``,
    ``missing_z_ras_mm`` (z of the slice's first voxel), ``missing_centre_ras_mm`` (the slice's
    centre), ``expected_positions_mm`` (all), ``actual_positions_mm`` (written,
    slice order), ``spacing_mm``.
    """
    data, aff = _load(image)
    n = int(data.shape[2])
    m = n // 2 if missing_index is None else int(missing_index)
    if not 0 < m < n - 1:
        raise ValueError("the missing slice must be inside the stack")
    study, frame = _study(seed, "dicom_missing_slice")
    s = _new_series(study, role, 3, vendor, f"{role.upper()} Dixon", frame,
                    DIXON_IMAGE_TYPE[vendor][role], data)
    ks = [k for k in range(n) if k != m]
    _write_volume(out_dir, data, aff, s, slices=ks)
    expected = _positions_along_normal(aff, range(n))
    _, _, _, step, origin = _grid_geometry(aff)
    ipp = origin + step * m
    truth = {"missing_index": m, "missing_position_mm": expected[m],
             "missing_ipp_lps": [float(v) for v in ipp],
             "missing_z_ras_mm": float(_world(aff, [0, 0, m])[2]),
             "missing_centre_ras_mm": [float(c) for c in
                                       _world(aff, [(data.shape[0] - 1) / 2, (data.shape[1] - 1) / 2, m])],
             "expected_positions_mm": expected,
             "actual_positions_mm": [expected[k] for k in ks],
             "spacing_mm": float(np.linalg.norm(step)), "series_uid": s.series_uid}
    return {"folder": Path(out_dir)}, truth


def dicom_uneven_spacing(out_dir, image, from_index=None, extra_gap_mm=None, role="water",
                         vendor="siemens", seed=0):
    """A series whose slice positions are not equally spaced (two stacks joined with a gap).

    Slices from ``from_index`` on lie ``extra_gap_mm`` (default half a step) further along the
    normal than the nominal SpacingBetweenSlices says; their pixels are the input resampled
    (linear, along the slice axis) at those true positions, so header and pixels agree and
    only the assumption of a uniform step is wrong. Slices falling past the input's last
    slice are not written.

    Returns paths ``folder``; truth ``from_index``, ``extra_gap_mm``, ``spacing_mm``,
    ``expected_positions_mm`` (uniform, from the first slice, as many as written),
    ``actual_positions_mm``.
    """
    data, aff = _load(image)
    n = int(data.shape[2])
    m = n // 2 if from_index is None else int(from_index)
    _, _, _, step, _ = _grid_geometry(aff)
    dz = float(np.linalg.norm(step))
    gap = 0.5 * dz if extra_gap_mm is None else float(extra_gap_mm)
    pos = np.arange(n) * dz + np.where(np.arange(n) >= m, gap, 0.0)
    keep = pos <= (n - 1) * dz + 1e-9
    pos = pos[keep]
    kf = pos / dz
    k0 = np.floor(kf).astype(int)
    k1 = np.minimum(k0 + 1, n - 1)
    w = (kf - k0)[None, None, :]
    resampled = (1 - w) * np.asarray(data, float)[:, :, k0] + w * np.asarray(data, float)[:, :, k1]
    study, frame = _study(seed, "dicom_uneven_spacing")
    s = _new_series(study, role, 3, vendor, f"{role.upper()} Dixon", frame,
                    DIXON_IMAGE_TYPE[vendor][role], resampled)
    _write_volume(out_dir, resampled, aff, s, positions_mm=list(pos))
    actual = _positions_along_normal(aff, positions_mm=list(pos))
    expected = [actual[0] + i * dz * np.sign(actual[-1] - actual[0]) for i in range(len(pos))]
    truth = {"from_index": m, "extra_gap_mm": gap, "spacing_mm": dz,
             "expected_positions_mm": [float(v) for v in expected],
             "actual_positions_mm": actual, "series_uid": s.series_uid}
    return {"folder": Path(out_dir)}, truth


# ----------------------------------------------------------------------------- 4. water-fat swaps


def water_fat_swapped(out_dir, water, fat):
    """The two files exchanged: ``water.nii.gz`` holds the fat image and vice versa.

    Dixon two-point reconstruction resolves the two species only up to a global choice of
    the field map; a wrong global choice (or a mislabelled series) swaps the whole volume
    (Ma J. 2008, JMRI 28:543 "Dixon techniques for water and fat imaging", section on swaps).
    Returns paths ``water``, ``fat``; truth ``swapped`` "all".
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    w, aff = _load(water)
    f, _ = _load(fat)
    return ({"water": _save(out / "water.nii.gz", f, aff), "fat": _save(out / "fat.nii.gz", w, aff)},
            {"swapped": "all"})


def water_fat_swapped_region(out_dir, water, fat, region="blob", centre_mm=None,
                             radii_mm=(70.0, 60.0, 45.0), slices=None):
    """Water and fat exchanged inside one connected region (a local swap).

    Phase-unwrapping / field-map region-growing failures in Dixon reconstruction choose the
    wrong root in a connected region, so water and fat exchange there and nowhere else
    (Ma 2008 JMRI 28:543; Berglund & Kullberg 2012 MRM 67:1684, the "swaps" the graph-cut
    methods avoid); at the field of view's ends they cover a block of slices. ``region``:
    ``"blob"`` an ellipsoid in patient mm (centre default: halfway from the body's centre to
    its left edge, i.e. one flank), or ``"slab"`` the slices ``slices`` = (k0, k1) (default
    the last quarter of the stack). The mask is cut to the body.

    Returns paths ``water``, ``fat``, ``mask`` (uint8 NIfTI, 1 = swapped); truth ``region``,
    ``mask`` (bool ndarray on the input grid), ``n_voxels``, ``centre_mm``/``slices``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    w, aff = _load(water)
    f, _ = _load(fat)
    body = body_mask(w, f)
    truth = {"region": region}
    if region == "slab":
        n = w.shape[2]
        k0, k1 = (3 * n // 4, n) if slices is None else slices
        mask = np.zeros(w.shape, bool)
        mask[:, :, k0:k1] = True
        truth["slices"] = [int(k0), int(k1)]
    elif region == "blob":
        ijk = np.indices(w.shape).reshape(3, -1).T
        xyz = _world(aff, ijk)
        if centre_mm is None:
            inside = xyz[body.ravel()]
            c = inside.mean(axis=0)
            left_edge = inside[:, 0].min()  # RAS: the patient's left is -x
            centre = np.array([0.5 * (c[0] + left_edge), c[1], c[2]])
        else:
            centre = np.asarray(centre_mm, float)
        r = np.asarray(radii_mm, float)
        mask = (((xyz - centre) / r) ** 2).sum(axis=1).reshape(w.shape) <= 1.0
        truth["centre_mm"] = [float(v) for v in centre]
        truth["radii_mm"] = [float(v) for v in r]
    else:
        raise ValueError("region is 'blob' or 'slab'")
    mask &= body
    lab, n = ndimage.label(mask)
    if n > 1:  # keep it one connected region, as a swap is
        mask = lab == 1 + int(np.argmax(ndimage.sum(mask, lab, range(1, n + 1))))
    w2, f2 = np.array(w, copy=True), np.array(f, copy=True)
    w2[mask], f2[mask] = f[mask], w[mask]
    truth.update(mask=mask, n_voxels=int(mask.sum()))
    paths = {"water": _save(out / "water.nii.gz", w2, aff), "fat": _save(out / "fat.nii.gz", f2, aff),
             "mask": _save(out / "swap_mask.nii.gz", mask.astype(np.uint8), aff)}
    return paths, truth


# ----------------------------------------------------------------------------- 5. noise


def _rician(signal, sigma, rng):
    """|signal + n_re + i n_im|, n ~ N(0, sigma^2) each: the magnitude of a complex image with
    Gaussian noise in both channels (Gudbjartsson & Patz 1995, MRM 34:910)."""
    s = np.asarray(signal, float)
    return np.hypot(s + rng.normal(0.0, sigma, s.shape), rng.normal(0.0, sigma, s.shape))


def _noisy(water, fat, sigma, sigma_rel, seed):
    w, aff = _load(water)
    f, _ = _load(fat)
    body = body_mask(w, f)
    if sigma is None:
        sigma = sigma_rel * float(np.percentile((np.asarray(w, float) + f)[body], 99))
    rng = np.random.default_rng(seed)
    return _rician(w, sigma, rng).astype(np.float32), _rician(f, sigma, rng).astype(np.float32), \
        aff, body, float(sigma)


def rician_noise(out_dir, water, fat, sigma=None, sigma_rel=0.03, seed=0, input_sigma=0.0):
    """Clean counterpart of the noise faults: Rician noise of known sigma added to each channel,
    background kept (Rayleigh-distributed air from which sigma can be measured).

    ``sigma`` absolute (default ``sigma_rel`` x the 99th percentile of W + F in the body).
    With a noise-free input the truth is ``sigma``; if the input already carries Gaussian-like
    noise of ``input_sigma``, the total is about hypot(sigma, input_sigma) where the signal is
    strong (``sigma_total``). Returns paths ``water``, ``fat``; truth ``sigma``,
    ``sigma_total``, ``seed``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    w, f, aff, _, sigma = _noisy(water, fat, sigma, sigma_rel, seed)
    return ({"water": _save(out / "water.nii.gz", w, aff), "fat": _save(out / "fat.nii.gz", f, aff)},
            {"sigma": sigma, "sigma_total": float(np.hypot(sigma, input_sigma)), "seed": seed})


def masked_background(out_dir, water, fat, sigma=None, sigma_rel=0.03, seed=0, margin_mm=4.0,
                      input_sigma=0.0):
    """Background outside the body set to exactly 0 after Rician noise (vendor masking).

    Many reconstructions and exports store air as exactly 0: Dixon water/fat maps where no
    signal was fitted, vendor background-suppression filters, skull-strip-like masks applied
    by post-processing nodes. The Rayleigh background from which sigma is usually estimated
    (Henkelman 1985, Med Phys 12:232; Sijbers et al. 2007, Phys Med Biol 52:1335) is gone. Noise of known ``sigma`` is added first (as
    ``rician_noise``), then every voxel farther than ``margin_mm`` from the body is set to 0.

    Returns paths ``water``, ``fat``, ``body`` (uint8 mask of the kept region); truth
    ``sigma``, ``sigma_total``, ``zero_fraction`` (of all voxels), ``margin_mm``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    w, f, aff, body, sigma = _noisy(water, fat, sigma, sigma_rel, seed)
    vox = np.linalg.norm(aff[:3, :3], axis=0)
    dist = ndimage.distance_transform_edt(~body, sampling=vox)
    keep = dist <= margin_mm
    w[~keep] = 0.0
    f[~keep] = 0.0
    paths = {"water": _save(out / "water.nii.gz", w, aff), "fat": _save(out / "fat.nii.gz", f, aff),
             "body": _save(out / "body.nii.gz", keep.astype(np.uint8), aff)}
    return paths, {"sigma": sigma, "sigma_total": float(np.hypot(sigma, input_sigma)),
                   "zero_fraction": float((~keep).mean()), "margin_mm": margin_mm}


def _inner_rectangle(footprint):
    """A large axis-aligned rectangle inside a 2-D bool footprint, grown from its deepest point."""
    dist = ndimage.distance_transform_edt(footprint)
    i, j = np.unravel_index(int(np.argmax(dist)), footprint.shape)
    box = [i, i + 1, j, j + 1]
    grown = True
    while grown:
        grown = False
        for side in range(4):
            b = list(box)
            b[side] += -1 if side in (0, 2) else 1
            if b[0] < 0 or b[2] < 0 or b[1] > footprint.shape[0] or b[3] > footprint.shape[1]:
                continue
            if footprint[b[0]:b[1], b[2]:b[3]].all():
                box, grown = b, True
    return box


def cropped_no_air(out_dir, water, fat, sigma=None, sigma_rel=0.03, seed=0, input_sigma=0.0):
    """A field of view cropped inside the body: no air anywhere in the volume.

    A small field of view prescribed on the spine (or a crop by a viewer or a research
    export) leaves no background from which to measure noise. Noise of known ``sigma`` is
    added first (as ``rician_noise``), then the in-plane axes are cut to a rectangle that lies
    in the body on every slice (the body eroded by one voxel), all slices kept; the affine's
    offset moves with the crop so the geometry stays right (voxel (0,0,0) of the crop is
    voxel (i0, j0, 0) of the input).

    Returns paths ``water``, ``fat``; truth ``sigma``, ``sigma_total``, ``box`` [i0, i1, j0,
    j1] on the input grid, ``air_voxels`` (0: checked against the body mask).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    w, f, aff, body, sigma = _noisy(water, fat, sigma, sigma_rel, seed)
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[:, :, 1] = ndimage.generate_binary_structure(2, 1)  # erode within each slice only
    inner = ndimage.binary_erosion(body, structure=in_plane)
    footprint = inner.all(axis=2)
    if not footprint.any():
        raise ValueError("no in-plane position lies in the body on every slice")
    i0, i1, j0, j1 = _inner_rectangle(footprint)
    crop_aff = aff.copy()
    crop_aff[:3, 3] = _world(aff, [i0, j0, 0])
    air = int((~body[i0:i1, j0:j1, :]).sum())
    paths = {"water": _save(out / "water.nii.gz", w[i0:i1, j0:j1], crop_aff),
             "fat": _save(out / "fat.nii.gz", f[i0:i1, j0:j1], crop_aff)}
    return paths, {"sigma": sigma, "sigma_total": float(np.hypot(sigma, input_sigma)),
                   "box": [int(i0), int(i1), int(j0), int(j1)], "air_voxels": air}


# ----------------------------------------------------------------------------- 6. vertebra maps


def _centroids(labels, aff, values):
    out = {}
    for v in values:
        idx = np.argwhere(labels == v)
        if len(idx):
            out[v] = _world(aff, idx.mean(axis=0))
    return out


def totalseg_mr_vertebrae(out_dir, vertebrae, lumbar=(1, 2, 3, 4, 5), sacrum=6):
    """A TotalSegmentator ``total_mr``-style map where a per-vertebra map is expected.

    TotalSegmentator's MR task labels all vertebrae with one value (19 ``vertebrae``), the
    sacrum 18, discs 20, and vessels 23 aorta, 24 inferior vena cava, 26/27 iliac artery
    left/right, 28/29 iliac vein left/right (class_map["total_mr"], totalsegmentator/
    map_to_binary.py). Values 26-29 collide with the CT task's vertebrae (S1 = 26, L5 = 27,
    L4 = 28, L3 = 29 in class_map["total"]), so a reader told "TotalSegmentator" can take the
    iliac vessels for S1-L3. Drawn from the input: bodies -> 19, S1 -> 18, discs between
    adjacent bodies -> 20; aorta and IVC in front of the column down to L4's centre (the aortic
    bifurcation lies at L4, Gray's Anatomy), then the common iliac arteries and veins diverging
    laterally to the bottom of the volume (veins behind and lateral to the arteries).

    Returns paths ``vertebrae``; truth ``values`` (name -> value), ``voxels`` per value,
    ``collides_with_total_ct`` {26: "vertebrae_S1", 27: "vertebrae_L5", 28: "vertebrae_L4",
    29: "vertebrae_L3"}.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    v, aff = _load(vertebrae)
    v = np.asarray(v)
    new = np.zeros(v.shape, np.uint8)
    bodies = list(lumbar) + [sacrum]
    for b in lumbar:
        new[v == b] = TOTALSEG_MR["vertebrae"]
    new[v == sacrum] = TOTALSEG_MR["sacrum"]
    # Discs: between two adjacent bodies along the slice axis, the overlap of their footprints.
    ax = _slice_axis(aff)
    for a, b in zip(bodies[:-1], bodies[1:]):
        ka = np.nonzero(np.any(v == a, axis=tuple(i for i in range(3) if i != ax)))[0]
        kb = np.nonzero(np.any(v == b, axis=tuple(i for i in range(3) if i != ax)))[0]
        if not len(ka) or not len(kb):
            continue
        lo, hi = (ka.max() + 1, kb.min()) if ka.max() < kb.min() else (kb.max() + 1, ka.min())
        if hi <= lo:
            continue
        foot = np.any(v == a, axis=ax) & np.any(v == b, axis=ax)
        sl = [slice(None)] * 3
        sl[ax] = slice(lo, hi)
        region = np.expand_dims(foot, ax) & (new[tuple(sl)] == 0)
        block = new[tuple(sl)]
        block[region] = TOTALSEG_MR["intervertebral_discs"]
    cents = _centroids(v, aff, bodies)
    if len(cents) < 2:
        raise ValueError("need at least two labelled bodies")
    # Vessels: centrelines in RAS mm as functions of z, discs of fixed radius in the xy plane.
    zs = np.array([cents[b][2] for b in bodies if b in cents])
    xs = np.array([cents[b][0] for b in bodies if b in cents])
    ys_body = {b: np.argwhere(v == b) for b in bodies if b in cents}
    front = {b: _world(aff, idx)[:, 1].max() for b, idx in ys_body.items()}
    fy = np.array([front[b] for b in bodies if b in cents])
    order = np.argsort(zs)
    zs, xs, fy = zs[order], xs[order], fy[order]
    ijk = np.indices(v.shape).reshape(3, -1).T
    xyz = _world(aff, ijk)
    z = xyz[:, 2]
    cx = np.interp(z, zs, xs)
    cy = np.interp(z, zs, fy)
    z_bif = cents[4][2] if 4 in cents else zs[len(zs) // 2]
    below = np.clip(z_bif - z, 0, None)  # mm below the bifurcation
    # (value, x offset above, y offset, radius mm, lateral divergence mm per mm below)
    vessels = [
        (TOTALSEG_MR["aorta"], -15.0, 14.0, 10.0, None),
        (TOTALSEG_MR["inferior_vena_cava"], 22.0, 12.0, 11.0, None),
        (TOTALSEG_MR["iliac_artery_left"], -15.0, 16.0, 5.0, -0.6),
        (TOTALSEG_MR["iliac_artery_right"], -5.0, 16.0, 5.0, 0.6),
        (TOTALSEG_MR["iliac_vena_left"], 5.0, 6.0, 6.0, -0.7),
        (TOTALSEG_MR["iliac_vena_right"], 22.0, 6.0, 6.0, 0.5),
    ]
    flat = new.reshape(-1)
    counts = {}
    for value, dx, dy, r, div in vessels:
        if div is None:
            region = z >= z_bif
            px = cx + dx
        else:
            region = z < z_bif
            px = cx + dx + div * below
        inside = region & ((xyz[:, 0] - px) ** 2 + (xyz[:, 1] - (cy + dy + r)) ** 2 <= r * r)
        inside &= flat == 0
        flat[inside] = value
    new = flat.reshape(v.shape)
    for name, value in TOTALSEG_MR.items():
        counts[name] = int((new == value).sum())
    path = _save(out / "vertebrae_total_mr.nii.gz", new, aff)
    truth = {"values": dict(TOTALSEG_MR), "voxels": counts,
             "collides_with_total_ct": {26: "vertebrae_S1", 27: "vertebrae_L5",
                                        28: "vertebrae_L4", 29: "vertebrae_L3"}}
    return {"vertebrae": path}, truth


def transitional_vertebra(out_dir, water, fat, vertebrae, labels_truth=None, extra_value=0,
                          l4=4, l5=5, s1=6):
    """Six lumbar vertebrae: an extra body between what is labelled L5 and S1.

    A lumbosacral transitional vertebra or a sixth lumbar vertebra occurs in about 4-30 % of
    people (Konin & Walz 2010, AJNR 31:1778; Castellvi classification); numbering from the
    sacrum then shifts by one. Built realistically, not by relabelling only: one whole motion
    segment (from the middle of the L4-L5 disc to the middle of the L5-S1 disc, i.e. the L5
    body with half of each disc) is repeated along the slice axis, in the images, the muscle
    truth and the vertebra map alike, so the column is one segment longer and the volume
    gains that many slices (the affine is unchanged: the inserted slices extend the grid).
    The body next to S1 gets ``extra_value`` in the vertebra map (0 = unlabelled; e.g. 7 = an
    unexpected value); the other keeps L5's value.

    Returns paths ``water``, ``fat``, ``vertebrae`` (+ ``labels_truth``); truth
    ``n_lumbar_bodies`` 6, ``extra_value``, ``inserted_slices`` [k0, k1) on the new grid (the
    repeated copy), ``extra_body_slices`` [k0, k1) (the body next to S1), ``extra_centre_mm``,
    ``shape``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    v, aff = _load(vertebrae)
    v = np.asarray(v)
    ax = _slice_axis(aff)
    others = tuple(i for i in range(3) if i != ax)

    def extent(value):
        ks = np.nonzero(np.any(v == value, axis=others))[0]
        if not len(ks):
            raise ValueError(f"vertebra value {value} not in the map")
        return ks.min(), ks.max()

    e4, e5, es = extent(l4), extent(l5), extent(s1)
    caudal_up = es[0] > e5[1]  # k grows toward the sacrum
    if caudal_up:
        ka = int(round((e4[1] + e5[0]) / 2.0)) + 1
        kb = int(round((e5[1] + es[0]) / 2.0)) + 1
    else:
        ka = int(round((es[1] + e5[0]) / 2.0)) + 1
        kb = int(round((e5[1] + e4[0]) / 2.0)) + 1
    n = kb - ka

    def insert(arr):
        arr = np.asarray(arr)
        take = lambda s, e: np.take(arr, np.arange(s, e), axis=ax)  # noqa: E731
        return np.concatenate([take(0, kb), take(ka, kb), take(kb, arr.shape[ax])], axis=ax)

    new_v = insert(v).astype(np.uint8)
    # The copy at [kb, kb+n) follows the original slab; the one next to S1 is the extra body.
    extra = (kb, kb + n) if caudal_up else (ka, kb)
    sl = [slice(None)] * 3
    sl[ax] = slice(*extra)
    block = new_v[tuple(sl)]
    block[block == l5] = extra_value
    paths = {}
    w, _ = _load(water)
    f, _ = _load(fat)
    paths["water"] = _save(out / "water.nii.gz", insert(w), aff)
    paths["fat"] = _save(out / "fat.nii.gz", insert(f), aff)
    paths["vertebrae"] = _save(out / "vertebrae.nii.gz", new_v, aff)
    if labels_truth is not None:
        lt, _ = _load(labels_truth)
        paths["labels_truth"] = _save(out / "labels_truth.nii.gz", insert(lt).astype(np.uint8), aff)
    body_in_extra = np.zeros(new_v.shape, bool)
    body_in_extra[tuple(sl)] = insert(v)[tuple(sl)] == l5
    centre = _world(aff, np.argwhere(body_in_extra).mean(axis=0))
    truth = {"n_lumbar_bodies": 6, "extra_value": int(extra_value),
             "inserted_slices": [int(kb), int(kb + n)], "extra_body_slices": [int(extra[0]), int(extra[1])],
             "extra_centre_mm": [float(c) for c in centre], "shape": list(new_v.shape),
             "slice_axis": ax}
    return paths, truth


def vertebrae_out_of_order(out_dir, vertebrae, a=2, b=4):
    """Vertebra values out of cranio-caudal order: the bodies labelled ``a`` and ``b`` exchange
    values (a hand-corrected map saved with two labels crossed). Returns paths ``vertebrae``;
    truth ``swapped`` [a, b], ``order_top_down`` (values from cranial to caudal)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    v, aff = _load(vertebrae)
    new = np.array(v, copy=True)
    new[v == a], new[v == b] = b, a
    cents = _centroids(new, aff, [x for x in np.unique(new) if x])
    order = [int(x) for x in sorted(cents, key=lambda x: -cents[x][2])]
    return {"vertebrae": _save(out / "vertebrae.nii.gz", new, aff)}, {"swapped": [a, b],
                                                                       "order_top_down": order}


# ----------------------------------------------------------------------------- 7. muscle sides


def muscle_sides_swapped(out_dir, labels, pairs=LEFT_RIGHT_PAIRS):
    """Muscle label map with every *_left value exchanged with its *_right value.

    Released models have shipped with sides mixed or exchanged: MRSegmentator v1.0.0 "did
    occasionally mix left & right classes" (retrained without mirroring augmentation in v1.1.0,
    github.com/hhaentze/MRSegmentator pull 8); MOOSE's clin_ct_lungs produced left-right
    flipped segmentations (github.com/ENHANCE-PET/MOOSE issue 232); nnU-Net's default mirroring
    augmentation causes chirality errors (github.com/MIC-DKFZ/nnUNet issue 869). A map drawn in
    radiological (image) left-right, or one whose orientation flip was lost in conversion, does
    the same to the whole map. Default pairs: the project's 1/2, 3/4, 5/6, 7/8.
    Returns paths ``labels``; truth ``pairs``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lab, aff = _load(labels)
    new = np.array(lab, copy=True)
    for left, right in pairs:
        new[lab == left], new[lab == right] = right, left
    return {"labels": _save(out / "labels.nii.gz", new, aff)}, {"pairs": [list(p) for p in pairs]}


# ----------------------------------------------------------------------------- 8. oblique slab


def _disc_planes(v, aff, bodies=(1, 2, 3, 4, 5, 6)):
    """Per level, (k fractional on the slice axis, in-plane centre (i, j)) of the disc between
    two bodies: midway between the upper body's lower edge and the lower body's upper edge
    (docs/imaging.md "Levels")."""
    ax = _slice_axis(aff)
    others = tuple(i for i in range(3) if i != ax)
    out = {}
    for name, a, b in zip(LEVELS, bodies[:-1], bodies[1:]):
        ka = np.nonzero(np.any(v == a, axis=others))[0]
        kb = np.nonzero(np.any(v == b, axis=others))[0]
        if not len(ka) or not len(kb):
            continue
        if ka.mean() < kb.mean():
            k = (ka.max() + kb.min()) / 2.0
        else:
            k = (kb.max() + ka.min()) / 2.0
        centre = (np.argwhere(v == a).mean(axis=0) + np.argwhere(v == b).mean(axis=0)) / 2.0
        centre[ax] = k
        out[name] = centre
    return out, ax


def _section_area(labels, value, ax, k, area_mm2):
    """Area of ``value`` on the slice plane at fractional index ``k`` (linear between slices)."""
    n = labels.shape[ax]
    k0 = int(np.floor(k))
    t = k - k0
    total = 0.0
    for kk, wgt in ((k0, 1 - t), (k0 + 1, t)):
        if wgt > 0 and 0 <= kk < n:
            total += wgt * float((np.take(labels, kk, axis=ax) == value).sum())
    return total * area_mm2


def oblique_slab(out_dir, water, fat, labels_truth, vertebrae, angle_deg=20.0, truth_json=None):
    """Water, fat and truth labels resampled on a slice stack REALLY tilted about left-right.

    An oblique axial slab (slices prescribed parallel to a disc, 10-30 degrees off true axial
    in the lower lumbar spine) stores a grid whose slice normal is tilted; the NIfTI affine
    (sform/qform) or DICOM ImageOrientationPatient carries it, and each slice cuts the
    muscles obliquely. Here the input grid is rotated by ``angle_deg`` about its own
    left-right axis (the in-plane axis closest to patient x) through the volume centre;
    every new voxel takes the input's value at its world position (linear for water/fat,
    nearest for labels; outside the input 0). The written affine is the rotated grid's, so
    the geometry is exact: a landmark has the same world coordinates in both volumes.

    Truth: ``angle_deg``, ``measured_tilt_deg`` (between the new and the input slice
    normals), ``tilt_from_superior_deg``; ``csa`` rows per muscle value and level with
    ``csa_mm2_perpendicular`` (from the input labels on the input grid: the section at the
    disc plane perpendicular to the input slice axis), ``csa_mm2_on_tilted_slices`` (the
    tilted grid's section through the same disc centre: what a reader that ignores the tilt
    measures) and, given the phantom's ``truth_json``, ``csa_mm2_truth`` (its exact value).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    w, aff = _load(water)
    f, _ = _load(fat)
    lab, _ = _load(labels_truth)
    v, _ = _load(vertebrae)
    shape = np.array(w.shape[:3])
    dirs = aff[:3, :3] / np.linalg.norm(aff[:3, :3], axis=0)
    lr_axis = int(np.argmax(np.abs(dirs[0])))
    ax = _slice_axis(aff)
    centre = _world(aff, (shape - 1) / 2.0)
    rot = _rotation(dirs[:, lr_axis], np.radians(angle_deg))
    new_aff = np.eye(4)
    new_aff[:3, :3] = rot @ aff[:3, :3]
    new_aff[:3, 3] = rot @ (aff[:3, 3] - centre) + centre
    m = np.linalg.inv(aff) @ new_aff  # new voxel index -> input voxel index

    def resample(arr, order):
        return ndimage.affine_transform(np.asarray(arr, np.float32 if order else arr.dtype), m,
                                        output_shape=tuple(shape), order=order, cval=0.0,
                                        mode="constant")

    w2, f2 = resample(w, 1), resample(f, 1)
    lab2, v2 = resample(np.asarray(lab), 0), resample(np.asarray(v), 0)
    paths = {"water": _save(out / "water.nii.gz", w2.astype(np.float32), new_aff),
             "fat": _save(out / "fat.nii.gz", f2.astype(np.float32), new_aff),
             "labels_truth": _save(out / "labels_truth.nii.gz", lab2.astype(np.uint8), new_aff),
             "vertebrae": _save(out / "vertebrae.nii.gz", v2.astype(np.uint8), new_aff)}
    n_old = aff[:3, ax]
    n_new = new_aff[:3, ax]
    lab = np.asarray(lab)
    spacing = np.linalg.norm(aff[:3, :3], axis=0)
    area = float(np.prod([spacing[i] for i in range(3) if i != ax]))
    discs, _ = _disc_planes(np.asarray(v), aff)
    inv_new = np.linalg.inv(new_aff)
    exact = {}
    if truth_json is not None:
        for row in json.loads(Path(truth_json).read_text())["muscles"]:
            exact[(row["muscle"], row["side"], row["level"])] = row["csa_mm2"]
    rows = []
    for level, ijk in discs.items():
        p = _world(aff, ijk)
        k_new = float((inv_new[:3, :3] @ p + inv_new[:3, 3])[ax])
        for value, (muscle, side) in MUSCLE_VALUES.items():
            row = {"value": value, "muscle": muscle, "side": side, "level": level,
                   "disc_centre_mm": [float(c) for c in p],
                   "csa_mm2_perpendicular": _section_area(lab, value, ax, float(ijk[ax]), area),
                   "csa_mm2_on_tilted_slices": _section_area(lab2, value, ax, k_new, area)}
            if (muscle, side, level) in exact:
                row["csa_mm2_truth"] = exact[(muscle, side, level)]
            rows.append(row)
    truth = {"angle_deg": float(angle_deg), "measured_tilt_deg": _angle_deg(n_old, n_new),
             "tilt_from_superior_deg": _angle_deg(n_new, [0, 0, 1]),
             "rotation_axis_ras": [float(c) for c in dirs[:, lr_axis]],
             "affine": new_aff.tolist(), "csa": rows}
    return paths, truth

"""One image volume out of a DICOM folder: which images, in which order, with which geometry.

A folder from a scanner or an archive often holds more than one thing: a localiser, a water and
a fat series, or water and fat (and in- and opposed-phase) images interleaved in one series
(Philips mDIXON exports), told apart only by the Image Type (0008,0008) values. The images
are grouped into stacks by series and Image Type; a stack is a Dixon water or fat image when
one of its Image Type values says so (`DIXON_TYPES`: Philips W / F / IP / OP, Siemens WATER /
FAT / IN_PHASE / OPP_PHASE), a localiser when its Image Type says so or its images lie in more
than one orientation.

`read_dicom_volume(folder, contrast)` takes the one stack of that Dixon `contrast` ("water",
"fat"), or, where no stack in the folder carries a Dixon type, the one stack that is a volume
(the usual folder of one series with a localiser beside it). Anything else is ambiguous and
stops with the stacks found (series number, Image Type, number of images). The chosen stack's
slices are sorted along their normal and checked (imaging.input_checks.check_slice_positions);
the affine comes from the positions and orientation in the headers, the pixels from SimpleITK
(GDCM, with each file's rescale slope and intercept).

Privacy: only the tags in `TAGS` are read (pydicom `specific_tags`); the series UID groups
images and is never reported or kept; no identity tag is read at all.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from imaging.input_checks import check_slice_positions
from lumbar_twin.errors import InputError

TAGS = ["SeriesInstanceUID", "SeriesNumber", "ImageType", "ImageOrientationPatient", "ImagePositionPatient",
        "PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing", "Rows", "Columns"]
#: Image Type values that name a Dixon image (DICOM PS3.3 C.7.6.1.1.2 leaves values 3 on to the
#: vendor: Philips mDIXON writes W, F, IP, OP; Siemens DIXON writes WATER, FAT, IN_PHASE, OPP_PHASE).
DIXON_TYPES = {
    "water": {"W", "WATER"},
    "fat": {"F", "FAT"},
    "in_phase": {"IP", "IN_PHASE"},
    "opposed_phase": {"OP", "OPP_PHASE", "OUT_PHASE"},
    "fat_fraction": {"FF", "FAT_FRACTION"},
}
#: Where the pixel spacing is: MR and CT images, projection images, secondary captures (SimpleITK
#: writes the last).
SPACING_TAGS = ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing")
LOCALISER_TYPES = {"LOCALIZER", "LOCALISER", "SCOUT", "SURVEY"}
#: Image orientation cosines that differ by more than this are different planes.
ORIENTATION_TOLERANCE = 1e-4


@dataclass(frozen=True)
class _Header:
    path: Path
    series: str  # SeriesInstanceUID: grouping only
    number: str
    image_type: tuple[str, ...]
    orientation: tuple[float, ...] | None
    position: tuple[float, ...] | None
    spacing: tuple[float, ...] | None
    shape: tuple[int, int] | None


@dataclass
class Stack:
    """Images of one series with one Image Type."""

    number: str
    image_type: tuple[str, ...]
    headers: list[_Header]

    @property
    def dixon(self) -> str | None:
        found = [name for name, values in DIXON_TYPES.items() if values & set(self.image_type)]
        return found[0] if len(found) == 1 else None

    @property
    def localiser(self) -> bool:
        if LOCALISER_TYPES & set(self.image_type):
            return True
        orientations = [h.orientation for h in self.headers if h.orientation is not None]
        return bool(orientations) and np.ptp(np.array(orientations), axis=0).max() > ORIENTATION_TOLERANCE

    @property
    def volume(self) -> bool:
        return (not self.localiser and len(self.headers) >= 2
                and all(h.orientation and h.position and h.spacing and h.shape for h in self.headers))

    def describe(self) -> str:
        kind = "localiser, " if self.localiser else ("" if self.volume else "not a volume, ")
        return (f"series {self.number or '?'} ImageType {chr(92).join(self.image_type) or '(none)'} "
                f"({kind}{len(self.headers)} image{'s' if len(self.headers) != 1 else ''})")


def read_dicom_volume(folder: str | Path, contrast: str | None = None, what: str = "image") -> nib.Nifti1Image:
    """The volume of `contrast` ("water", "fat" or None for the only volume) in a DICOM folder.

    Returns a Nifti1Image in the DICOM array order (x along rows, y along columns, z along the
    slice normal) with its RAS affine (mm). Raises InputError naming the folder: no DICOM images,
    an ambiguous choice (listing the stacks found), or a stack with faulty slice positions."""
    folder = Path(folder)
    stacks = find_stacks(folder)
    if not stacks:
        raise InputError(folder, "no DICOM series in this folder")
    stack = choose_stack(stacks, contrast, folder, what)
    return _read(stack, folder, what)


def find_stacks(folder: Path) -> list[Stack]:
    """The folder's images grouped by series and Image Type, in series number order."""
    groups: dict[tuple, Stack] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        header = _header(path)
        if header is None:
            continue
        key = (header.series, header.image_type)
        groups.setdefault(key, Stack(header.number, header.image_type, [])).headers.append(header)
    return sorted(groups.values(), key=lambda s: (_number(s.number), s.image_type))


def choose_stack(stacks: list[Stack], contrast: str | None, folder: Path, what: str) -> Stack:
    volumes = [s for s in stacks if s.volume]
    typed = [s for s in volumes if s.dixon is not None]
    if contrast is not None and typed:
        chosen = [s for s in typed if s.dixon == contrast]
        problem = f"no stack has a {contrast} Image Type" if not chosen else f"{len(chosen)} stacks are {contrast} images"
    else:
        chosen = volumes
        problem = "no image volume" if not chosen else "more than one image volume and no Image Type tells them apart"
    if len(chosen) == 1:
        return chosen[0]
    found = "; ".join(s.describe() for s in stacks)
    raise InputError(folder, f"{what}: cannot tell which images in this DICOM folder to read ({problem}); found "
                             f"{found}; give a folder holding only the wanted series")


def _read(stack: Stack, folder: Path, what: str) -> nib.Nifti1Image:
    import SimpleITK as sitk

    first = stack.headers[0]
    if any(h.shape != first.shape or not np.allclose(h.spacing, first.spacing) for h in stack.headers):
        raise InputError(folder, f"{what}: the images of {stack.describe()} differ in size or pixel spacing")
    rows, cols = np.array(first.orientation[:3]), np.array(first.orientation[3:])
    normal = np.cross(rows, cols)
    positions = np.array([h.position for h in stack.headers])
    spacing = check_slice_positions(positions, normal, folder, what)
    order = np.argsort(positions @ normal)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(stack.headers[k].path) for k in order])
    reader.MetaDataDictionaryArrayUpdateOff()  # pixels only: no header is kept
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise InputError(folder, f"cannot read the DICOM series: {str(exc).splitlines()[0]}") from None
    data = np.transpose(sitk.GetArrayFromImage(image).astype(np.float32), (2, 1, 0))  # (column, row, slice)
    if data.shape != (first.shape[1], first.shape[0], len(order)):
        raise InputError(folder, f"{what}: pixel data of shape {data.shape} does not match the headers")
    lps = np.eye(4)
    lps[:3, 0] = rows * first.spacing[1]  # PixelSpacing = (between rows, between columns)
    lps[:3, 1] = cols * first.spacing[0]
    lps[:3, 2] = normal * spacing
    lps[:3, 3] = positions[order[0]]
    return nib.Nifti1Image(data, np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps)  # LPS -> RAS


def _header(path: Path) -> _Header | None:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=TAGS)
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, AttributeError):
        return None
    if "SeriesInstanceUID" not in ds and "ImagePositionPatient" not in ds:
        return None  # DICOMDIR and other non-image objects

    def floats(name, n):
        try:
            values = tuple(float(v) for v in ds.get(name) or ())
        except (TypeError, ValueError):
            return None
        return values if len(values) == n else None

    raw = ds.get("ImageType")
    values = [] if raw is None else raw.split("\\") if isinstance(raw, str) else list(raw)
    image_type = tuple(str(v).strip().upper() for v in values)
    rows, cols = ds.get("Rows"), ds.get("Columns")
    return _Header(path, str(ds.get("SeriesInstanceUID", "")), str(ds.get("SeriesNumber", "") or ""), image_type,
                   floats("ImageOrientationPatient", 6), floats("ImagePositionPatient", 3),
                   next((v for v in map(lambda n: floats(n, 2), SPACING_TAGS) if v), None), (int(rows), int(cols)) if rows and cols else None)


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return float("inf")

"""MRI in, morphometry out: load -> levels -> segment (or import labels) -> quantify -> files.

Dixon water + fat is the primary path; a single T1-weighted image goes through a pseudo fat map
(imaging.single_contrast) to the same segmenter, and its fat fraction comes from a 3-class
Gaussian mixture per muscle (imaging.gmm_fat).

`run_segmentation` writes, into one folder and only when all are complete:
labels.nii.gz (the input's own grid and affine), morphometry.json, morphometry.csv, qc.png.
"""
from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from imaging.body import body_outline
from imaging.io import Image, load_image, same_grid, save_on_input_grid
from imaging.input_checks import check_distinct_dixon
from imaging.noise import estimate_noise
from imaging.obliquity import OBLIQUE_MIN_DEG, muscle_crossings
from imaging.water_fat_swap import check_global_swap, flag_swapped_rows, subcutaneous_fat_map
from imaging.find_levels import find_spine
from imaging.labels import DEFAULT_VERTEBRA_LABELS, LABEL_NAMES, muscle_label_map, vertebra_convention
from imaging.levels import Levels, levels_from_vertebrae
from imaging.morphometry import Morphometry
from imaging.qc import draw_qc
from imaging.gmm_fat import single_contrast_fat_fraction
from imaging.plausibility import labels_on_skin, suspect_rows
from imaging.quantify import FAT_FRACTION_SLAB_MM, measure, quantify
from imaging import segment as watershed_segmenter
from imaging import segment_anatomical
from imaging.single_contrast import calibrate_on_psoas, prepare
from lumbar_twin import __version__
from lumbar_twin.errors import InputError
from lumbar_twin.fileio import staged_directory, write_json_atomic, write_text_atomic

#: Built-in segmenters: name -> (function, what provenance calls it).
SEGMENTERS = {
    "anatomical": (segment_anatomical.segment, "built-in anatomical compartments (imaging.segment_anatomical)"),
    "watershed": (watershed_segmenter.segment, "built-in seeded watershed (imaging.segment)"),
}
OUTPUT_FILES = ("labels.nii.gz", "morphometry.json", "morphometry.csv", "qc.png")


@dataclass(frozen=True)
class SegmentationResult:
    morphometry: Morphometry
    levels: Levels
    labels: np.ndarray  # canonical orientation
    directory: Path


def run_segmentation(out_dir: str | Path, water: str | Path | None = None, fat: str | Path | None = None,
                     image: str | Path | None = None, vertebrae: str | Path | None = None,
                     vertebra_labels: str | None = None, labels: str | Path | None = None,
                     label_map: str | Path | None = None, subject: str | None = None,
                     method: str = "anatomical", accept_implausible: bool = False) -> SegmentationResult:
    """Segment and quantify a lumbar MRI (Dixon `water` + `fat`, or one T1-weighted `image`);
    every input fault is raised before anything is written. `method` picks the built-in
    segmenter (SEGMENTERS).

    A result that fails the plausibility checks (imaging.plausibility: an area far outside the
    healthy range, sides more than 3 x apart, a muscle on the skin) raises InputError and
    writes nothing, unless `accept_implausible`: then it is written with the reasons in
    provenance["warnings"] and provenance["accepted_implausible"] set.

    Checked on input (docs/imaging.md, "What is checked on input"): headers and DICOM stacks
    (imaging.io), identical or globally swapped water and fat (stop); a regional swap flags the
    rows it reaches, a masked background moves the noise estimate inside the body, an oblique
    slab is read in each disc's axial plane (warnings)."""
    if method not in SEGMENTERS:
        raise InputError(None, f"unknown segmentation method {method!r}; expected one of {', '.join(SEGMENTERS)}",
                         field="--method")
    reference, water_data, fat_data, contrast = _load_contrast(water, fat, image)
    against = "water image" if contrast is None else "image"
    spacing = reference.spacing_mm
    if contrast is None:  # a water-fat swap over the whole volume stops here
        swap = subcutaneous_fat_map(water_data, fat_data, spacing)
        check_global_swap(swap, water, fat)
    if vertebrae is None:  # levels and vertebral bodies found on the image itself
        found = find_spine(water_data, fat_data, spacing, reference.source)
        levels, vertebra_map, convention = found.levels, found.vertebrae.astype(np.int32), DEFAULT_VERTEBRA_LABELS
    else:
        vert_img = _on_grid(load_image(vertebrae, "vertebra label map"), reference, vertebrae, against)
        convention = vertebra_convention(vertebra_labels)
        vertebra_map = np.rint(vert_img.data).astype(np.int32)
        levels = levels_from_vertebrae(vertebra_map, convention, str(vertebrae))

    if labels is not None:
        if label_map is None:
            raise InputError(labels, "an external label map needs --label-map (name -> value JSON)")
        muscle_labels = import_labels(_on_grid(load_image(labels, "label map"), reference, labels, against), label_map)
    else:
        muscle_labels = SEGMENTERS[method][0](water_data, fat_data, vertebra_map, convention, spacing)

    reference_hash = reference.content_hash()
    pseudonym = subject or f"subject-{reference_hash}"
    crossings, input_warnings = muscle_crossings(muscle_labels, reference.affine, levels, vertebra_map, convention)
    if contrast is None:
        noise = estimate_noise(water_data, fat_data, spacing)
        input_warnings += noise.warnings
        morphometry = quantify(muscle_labels, water_data, fat_data, reference.affine, levels, pseudonym,
                               noise_sigma=(noise.water, noise.fat), crossings=crossings)
        morphometry, swapped = flag_swapped_rows(morphometry, swap, muscle_labels, levels,
                                                 max(1.0, FAT_FRACTION_SLAB_MM / spacing[2]), water_data, fat_data)
        input_warnings += swapped
        fat_method = (f"Dixon F/(F+W) over each muscle's tissue within {FAT_FRACTION_SLAB_MM:g} mm of the disc "
                      "(triangular weights), border voxels unmixed from the fat around them, Rician-corrected")
        inputs = {"water": reference_hash, "fat": content_hash(fat_data)}
    else:
        scale = calibrate_on_psoas(contrast.corrected, muscle_labels, contrast.scale)
        morphometry = measure(muscle_labels, reference.affine, levels, pseudonym,
                              single_contrast_fat_fraction(muscle_labels, contrast.corrected, scale),
                              crossings=crossings)
        fat_method = (f"single contrast: 3-class Gaussian mixture per muscle at the disc on the bias-corrected "
                      f"T1-weighted signal, classes read on a lean-to-fat scale (psoas = {scale.lean_fraction:g}, "
                      f"adipose tissue = {scale.fat_reference_fraction:g}); intermediate class counted at its own "
                      f"fat content; psoas fat fraction assumed, not measured (imaging.gmm_fat)")
        inputs = {"image": reference_hash}
    problems = labels_on_skin(muscle_labels, body_outline(water_data + fat_data), spacing) + suspect_rows(morphometry)
    if problems and not accept_implausible:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(reference.source, f"implausible segmentation, nothing written: {problems[0]}{more}; "
                                           "rerun with --accept-implausible to write it with these warnings and "
                                           "check qc.png")
    morphometry = replace(morphometry, provenance={
        "toolkit": "lumbar-twin", "toolkit_version": __version__,
        "method": "imported label map" if labels is not None else SEGMENTERS[method][1]
                  + ("" if contrast is None else " on a pseudo fat map from the single-contrast image"),
        "fat_fraction": fat_method,
        "contrast": "dixon" if contrast is None else "single",
        "levels_from": "vertebra label map" if vertebrae is not None else "found on the image (imaging.find_levels)",
        "levels_found": list(levels.found), "levels_missing": list(levels.missing),
        "inputs": inputs,
        "voxel_mm": [round(v, 4) for v in spacing],
        "warnings": problems + input_warnings,
        "accepted_implausible": bool(problems),
        **({"noise_sigma": noise.provenance()} if contrast is None else {}),
        "csa_plane": "the disc's axial plane, read where each muscle's axis meets it (oblique slab, "
                     "imaging.obliquity)" if crossings else "the slices at each disc (within "
                     f"{OBLIQUE_MIN_DEG:g} degrees of axial, imaging.obliquity)",
        "muscle_axis_tilt_deg": {f"{LABEL_NAMES[v]} {lv}": round(c.tilt_deg, 1) for (v, lv), c in crossings.items()},
    })
    out_dir = Path(out_dir)
    with staged_directory(out_dir) as stage:
        save_on_input_grid(muscle_labels, reference, stage / "labels.nii.gz")
        write_json_atomic(stage / "morphometry.json", morphometry.to_dict())
        write_text_atomic(stage / "morphometry.csv", morphometry_csv(morphometry))
        draw_qc(reference.data, muscle_labels, levels, morphometry, spacing, stage / "qc.png",
                title=f"{pseudonym}: {', '.join(levels.found)}")
    return SegmentationResult(morphometry, levels, muscle_labels, out_dir)


def morphometry_csv(morphometry: Morphometry) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["subject", "muscle", "side", "level", "csa_mm2", "lean_csa_mm2", "fat_fraction", "flags"])
    for m in morphometry.muscles:
        writer.writerow([morphometry.subject, m.muscle, m.side, m.level, m.csa_mm2, m.lean_csa_mm2, m.fat_fraction,
                         ";".join(m.flags)])
    return buffer.getvalue()


def _load_contrast(water, fat, image):
    """(reference image, water-like, fat-like, SingleContrast or None) from either input kind."""
    if image is not None:
        if water is not None or fat is not None:
            raise InputError(None, "give either --image or --water and --fat, not both", field="--image")
        reference = load_image(image, "image")
        contrast = prepare(reference.data, str(image))
        return reference, contrast.water_like, contrast.fat_like, contrast
    if water is None or fat is None:
        raise InputError(None, "give both --water and --fat (Dixon), or --image (single contrast)",
                         field="--water/--fat")
    water_img = load_image(water, "water image", dixon="water")
    fat_img = _on_grid(load_image(fat, "fat image", dixon="fat"), water_img, fat)
    check_distinct_dixon(water_img, fat_img)
    return water_img, water_img.data, fat_img.data, None


def content_hash(data: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(data, dtype=np.float32).tobytes()).hexdigest()[:12]


def _on_grid(other: Image, reference: Image, path, against: str = "water image") -> Image:
    if not same_grid(other, reference):
        raise InputError(path, f"grid {other.shape} does not match the {against} grid {reference.shape}")
    return other


def import_labels(image: Image, mapping_path) -> np.ndarray:
    """External label values -> toolkit muscle labels; every value present must be mapped
    (or listed under "ignore" in the mapping file)."""
    mapping = muscle_label_map(mapping_path)
    values = np.rint(image.data).astype(np.int64)
    present = set(np.unique(values).tolist()) - {0}
    unknown = sorted(present - set(mapping))
    if unknown:
        raise InputError(image.source, f"label values {unknown[:10]} are not in the mapping {mapping_path} "
                                       "(map them or list them under \"ignore\")")
    out = np.zeros(values.shape, np.uint8)
    for external, toolkit in mapping.items():
        if toolkit:
            out[values == external] = toolkit
    return out


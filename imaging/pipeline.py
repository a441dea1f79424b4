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
from imaging.io import Image, label_values, load_image, same_grid, save_on_input_grid
from imaging import external
from imaging.conventions import muscle_convention, vertebra_convention
from imaging.find_levels import find_spine
from imaging.input_checks import affine_difference, check_distinct_dixon
from imaging.label_checks import check_imported_labels
from imaging.labels import DEFAULT_VERTEBRA_LABELS, LABEL_NAMES, MUSCLE_LABELS, ROW_LABELS
from imaging.noise import estimate_noise
from imaging.obliquity import OBLIQUE_MIN_DEG, muscle_crossings
from imaging.water_fat_swap import check_global_swap, flag_swapped_rows, subcutaneous_fat_map
from imaging.levels import Levels, levels_from_vertebrae
from imaging.morphometry import LEVELS, Morphometry
from imaging.qc import draw_qc
from imaging.gmm_fat import single_contrast_fat_fraction
from imaging.plausibility import (SLICE_LOSS_FAILS, beyond_lateral_reach, fat_order_problems, labels_on_skin,
                                  lost_on_a_slice, missing_rows, row_problems, side_excess, split_not_found,
                                  with_row_qc)
from imaging.vertebra_map import to_default_convention
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
SINGLE_CONTRASTS = ("t1", "t2", "pd")
SWAP_REASON = "water and fat swapped near this muscle on the slices its fat fraction is read from (imaging.water_fat_swap)"
#: What is known of a fat fraction from a T2-weighted (or PD) fast spin-echo image. On T1, the
#: 3-class mixture agrees with Dixon at ICC >= 0.77 (Wesselink et al. 2024); on T2, thresholding
#: agrees with IDEAL fat-water for multifidus and erector spinae (r 0.67-0.92 at L4-L5, L5-S1)
#: but differs systematically for psoas (BMC Med Imaging 2023, doi 10.1186/s12880-023-00992-w);
#: fluid and long-T2 oedema read fatty on T2.
T2_FAT_FRACTION_NOTE = ("fat fraction from a T2/PD-weighted image: approximate (against fat-water imaging r 0.67-0.92 "
                        "for multifidus and erector spinae, systematic differences for psoas; oedema reads fatty)")


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
                     method: str = "anatomical", accept_implausible: bool = False,
                     lowest_disc: str | None = None, segmenter: str = "builtin",
                     image_contrast: str = "t1") -> SegmentationResult:
    """Segment and quantify a lumbar MRI (Dixon `water` + `fat`, or one T1-weighted `image`);
    every input fault is raised before anything is written. `method` picks the built-in
    segmenter (SEGMENTERS). External label maps come with `label_map`, a convention name
    (imaging.conventions) or a JSON mapping; `vertebra_labels` names the vertebra map's
    convention; `lowest_disc` (e.g. "L4-L5") numbers the levels when the sacrum is not in view.
    `segmenter` other than "builtin" runs an installed external tool (imaging.external) and
    imports its labels (and its vertebrae, unless `vertebrae` is given) by its convention.
    `image_contrast` ("t1", "t2", "pd") says what a single `image` is: T2-weighted and
    proton-density stacks take their muscles from labels (`labels` or `segmenter`) and their
    levels from a vertebra map; their fat fraction is approximate and their rows are marked
    "warn" (T2_FAT_FRACTION_NOTE).
    Imported labels are checked for side and position against the vertebrae
    (imaging.label_checks).

    Each morphometry row carries a QC status ("pass", "warn", "fail") and its reasons; a muscle
    not labelled at a level has no row (not measured) and is listed in
    provenance["not_measured"].

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
    if lowest_disc is not None and lowest_disc not in LEVELS:
        raise InputError(None, f"unknown level {lowest_disc!r}; expected one of {', '.join(LEVELS)}",
                         field="--lowest-disc")
    if segmenter != "builtin" and labels is not None:
        raise InputError(None, "give either --labels (an existing segmentation) or --segmenter, not both",
                         field="--segmenter")
    if labels is not None and label_map is None:
        raise InputError(labels, "an external label map needs --label-map (a convention name or a name -> value JSON)")
    if image_contrast not in SINGLE_CONTRASTS:
        raise InputError(None, f"unknown image contrast {image_contrast!r}; expected one of "
                               f"{', '.join(SINGLE_CONTRASTS)}", field="--image-contrast")
    reference, water_data, fat_data, contrast = _load_contrast(water, fat, image, image_contrast)
    against = "water image" if contrast is None else "image"
    spacing = reference.spacing_mm
    swap = None
    if contrast is None:  # a water-fat swap over the whole volume stops here
        swap = subcutaneous_fat_map(water_data, fat_data, spacing)
        check_global_swap(swap, water, fat)
    with external.work_folder() as work:
        if segmenter != "builtin":  # the tool's files are read below, before the folder goes
            tool_input = Path(work) / "image.nii.gz"
            save_on_input_grid(water_data + fat_data if contrast is None else reference.data, reference, tool_input,
                               np.float32)
            made = external.run_external(segmenter, tool_input, Path(work))
            labels, label_map = made.labels, made.convention
            if vertebrae is None and made.vertebrae is not None:
                vertebrae, vertebra_labels = made.vertebrae, made.vertebra_convention
        return _segment_and_write(out_dir, reference, water_data, fat_data, contrast, against, vertebrae,
                                  vertebra_labels, labels, label_map, subject, method, accept_implausible,
                                  lowest_disc, segmenter, swap)


def _segment_and_write(out_dir, reference, water_data, fat_data, contrast, against, vertebrae, vertebra_labels,
                       labels, label_map, subject, method, accept_implausible, lowest_disc,
                       segmenter, swap) -> SegmentationResult:
    spacing = reference.spacing_mm
    convention = DEFAULT_VERTEBRA_LABELS
    if contrast is not None and contrast.weighting != "t1":
        if labels is None:
            raise InputError(reference.source, f"the built-in segmenters read Dixon or T1-weighted images; for a "
                                               f"{contrast.weighting.upper()} stack give --labels or --segmenter")
        if vertebrae is None:
            raise InputError(reference.source, f"on a {contrast.weighting.upper()} stack the levels come from a "
                                               "vertebra label map: give --vertebrae (SPINEPS and TotalSegmentator "
                                               "vertebrae_mr segment T2-weighted spines)")
    if vertebrae is None:  # levels and vertebral bodies found on the image itself
        found = find_spine(water_data, fat_data, spacing, reference.source, lowest_disc)
        levels, vertebra_map = found.levels, found.vertebrae.astype(np.int32)
        levels_from = f"found on the image (imaging.find_levels): {found.levels.source}"
    else:
        vert_img = _on_grid(load_image(vertebrae, "vertebra label map"), reference, vertebrae, against)
        numbered = to_default_convention(label_values(vert_img, "vertebra label map"),
                                         vertebra_convention(vertebra_labels), spacing,
                                         str(vertebrae), lowest_disc)
        vertebra_map = numbered.labels.astype(np.int32)
        levels = (Levels(numbered.disc_slice, str(vertebrae)) if numbered.disc_slice
                  else levels_from_vertebrae(vertebra_map, convention, str(vertebrae)))
        levels_from = numbered.how

    split_held: dict[tuple[int, str], float] = {}  # the anatomical segmenter's slices with no split found
    if labels is not None:
        label_img = _on_grid(load_image(labels, "label map"), reference, labels, against)
        muscle_labels = import_labels(label_img, label_map)
        file_values: dict[int, list[int]] = {}
        for value, toolkit in muscle_convention(label_map).values.items():
            file_values.setdefault(toolkit, []).append(value)
        check_imported_labels(muscle_labels, vertebra_map, reference.affine, str(labels), file_values)
    else:
        extra = {"split_held": split_held} if method == "anatomical" else {}
        muscle_labels = SEGMENTERS[method][0](water_data, fat_data, vertebra_map, convention, spacing, **extra)

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
                      f"{contrast.weighting.upper()}-weighted signal, classes read on a lean-to-fat scale (psoas = "
                      f"{scale.lean_fraction:g}, adipose tissue = {scale.fat_reference_fraction:g}); intermediate "
                      f"class counted at its own fat content; psoas fat fraction assumed, not measured "
                      f"(imaging.gmm_fat)")
        inputs = {"image": reference_hash}
        if contrast.weighting != "t1":
            fat_method += "; " + T2_FAT_FRACTION_NOTE
            morphometry = with_row_qc(morphometry, {(m.muscle, m.side, m.level): [T2_FAT_FRACTION_NOTE]
                                                    for m in morphometry.muscles}, "warn")
    # the skin check needs the body's outline: on T2/PD stacks muscle is dark (about a tenth of
    # fat's signal) and the field of view often narrower than the body, so it is not read there
    on_skin = ({} if contrast is not None and contrast.weighting != "t1"
               else labels_on_skin(muscle_labels, body_outline(water_data + fat_data), spacing))
    failed = row_problems(morphometry)
    # the built-in segmenters': a side lost on a slice a level is read from (rows measured only)
    slice_losses = _measured(lost_on_a_slice(muscle_labels, levels, spacing[0] * spacing[1]) if labels is None else {},
                             morphometry)
    for key, reasons in slice_losses.items():
        if key[0] in SLICE_LOSS_FAILS:
            failed.setdefault(key, []).extend(reasons)
    for m in morphometry.muscles:
        if (m.muscle, m.side) in on_skin:
            failed.setdefault((m.muscle, m.side, m.level), []).append(on_skin[(m.muscle, m.side)])
    morphometry = with_row_qc(morphometry, failed, "fail")
    # a muscle the built-in segmenter did not find where every adult has one has no row to mark
    lost = missing_rows(morphometry, list(levels.found), MUSCLE_LABELS) if labels is None else []
    problems = list(dict.fromkeys([*on_skin.values(), *(r for reasons in failed.values() for r in reasons), *lost]))
    # a row flagged for a regional water-fat swap is written (marked), and build refuses it
    # unless accepted: its fat fraction and lean CSA are wrong
    morphometry = with_row_qc(morphometry, {(m.muscle, m.side, m.level): [SWAP_REASON] for m in morphometry.muscles
                                            if "water_fat_swap" in m.flags}, "fail")
    # a fat fraction out of the muscles' usual order warns (Dixon only: a single-contrast
    # image's psoas is the scale's lean reference)
    fat_order = fat_order_problems(morphometry) if contrast is None else {}
    morphometry = with_row_qc(morphometry, fat_order, "warn")
    slice_warnings = {key: reasons for key, reasons in slice_losses.items() if key[0] not in SLICE_LOSS_FAILS}
    if labels is None:  # the built-in segmenters': a multifidus split not found, a sheet taken laterally,
        # psoas or quadratus lumborum grown into a neighbour on one side
        bounds = segment_anatomical.SPLIT_SHARE_BOUNDS
        for flagged in (split_not_found(split_held, levels, muscle_labels.shape[2], bounds),
                        beyond_lateral_reach(muscle_labels, vertebra_map, convention, levels, spacing),
                        side_excess(morphometry)):
            for key, reasons in _measured(flagged, morphometry).items():
                slice_warnings.setdefault(key, []).extend(reasons)
    morphometry = with_row_qc(morphometry, slice_warnings, "warn")
    input_warnings = [*input_warnings, *(r for reasons in fat_order.values() for r in reasons),
                      *(r for reasons in slice_warnings.values() for r in reasons)]
    if problems and not accept_implausible:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(reference.source, f"implausible segmentation, nothing written: {problems[0]}{more}; "
                                           "rerun with --accept-implausible to write it with these warnings and "
                                           "check qc.png")
    morphometry = replace(morphometry, provenance={
        "toolkit": "lumbar-twin", "toolkit_version": __version__,
        "method": (f"external segmenter {segmenter} (imaging.external)" if segmenter != "builtin"
                   else "imported label map" if labels is not None else SEGMENTERS[method][1])
                  + ("" if contrast is None else " on a pseudo fat map from the single-contrast image"),
        "fat_fraction": fat_method,
        "contrast": "dixon" if contrast is None else contrast.weighting,
        "levels_from": levels_from,
        "levels_found": list(levels.found), "levels_missing": list(levels.missing),
        "label_convention": None if labels is None else str(label_map),
        "not_measured": not_measured(morphometry, muscle_labels, levels, builtin=labels is None),
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
    writer.writerow(["subject", "muscle", "side", "level", "csa_mm2", "lean_csa_mm2", "fat_fraction", "qc",
                     "qc_reasons", "flags"])
    for m in morphometry.muscles:
        writer.writerow([morphometry.subject, m.muscle, m.side, m.level, m.csa_mm2, m.lean_csa_mm2, m.fat_fraction,
                         m.qc, "; ".join(m.qc_reasons), ";".join(m.flags)])
    return buffer.getvalue()


def _load_contrast(water, fat, image, image_contrast="t1"):
    """(reference image, water-like, fat-like, SingleContrast or None) from either input kind."""
    if image is not None:
        if water is not None or fat is not None:
            raise InputError(None, "give either --image or --water and --fat, not both", field="--image")
        reference = load_image(image, "image")
        contrast = prepare(reference.data, str(image), image_contrast)
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
    if other.shape != reference.shape:
        raise InputError(path, f"grid {other.shape} does not match the {against} grid {reference.shape}")
    if not same_grid(other, reference):  # same shape, another place or orientation in the scanner
        angle, offset, zoom = affine_difference(other.affine, reference.affine)
        raise InputError(path, f"same grid size {other.shape} as the {against} but another position: origin "
                               f"{offset:.1f} mm away, axes {np.degrees(angle):.1f} deg apart, voxel size "
                               f"{zoom:.3f} mm different (is it from another series?)")
    return other


def import_labels(image: Image, convention_name_or_path) -> np.ndarray:
    """External label values -> toolkit row labels (imaging.labels.ROW_LABELS) by a built-in
    convention or a JSON mapping (imaging.conventions). With a mapping file every value present
    must be mapped or listed under "ignore"; with a convention that writes only its muscles
    (MuscleMap abdomen) any other value means the map is not that tool's."""
    convention = muscle_convention(convention_name_or_path)
    values = label_values(image)
    present = set(np.unique(values).tolist()) - {0}
    unknown = sorted(present - set(convention.values))
    if unknown and convention.only:
        what = (f"the mapping {convention_name_or_path}" if convention.source.startswith("mapping file")
                else f"the convention '{convention.name}' (values {sorted(convention.values)[:12]})")
        raise InputError(image.source, f"label values {unknown[:10]} are not in {what}: map them, list them under "
                                       "\"ignore\", or name the convention the map was written in")
    if not present & {v for v, toolkit in convention.values.items() if toolkit}:
        raise InputError(image.source, f"no muscle of the convention '{convention.name}' in the label map "
                                       f"(values present: {sorted(present)[:12]})")
    out = np.zeros(values.shape, np.uint8)
    for external, toolkit in convention.values.items():
        if toolkit:
            out[values == external] = toolkit
    return out


def _measured(problems: dict[tuple[str, str, str], list[str]], morphometry: Morphometry) -> dict:
    """The problems of rows the morphometry holds (a label check may name a level not measured)."""
    return {key: reasons for key, reasons in problems.items() if morphometry.get(*key) is not None}


def not_measured(morphometry: Morphometry, labels: np.ndarray, levels: Levels, builtin: bool) -> list[str]:
    """The rows a reader would expect but that have no measure: every muscle the segmenter
    draws (built-in) or the map holds (imported) at every level found, where it has no section
    at the disc (imaging.quantify.measure). The twin takes the template for them (never a zero)."""
    expected = (MUSCLE_LABELS if builtin else
                {key: value for key, value in ROW_LABELS.items() if np.any(labels == value)})
    out = []
    for level in levels.found:
        for (muscle, side) in expected:
            if morphometry.get(muscle, side, level) is None:
                out.append(f"{muscle.replace('_', ' ')} {side} at {level}: not labelled where the disc's section is read "
                           "(under one pixel there)")
    return out


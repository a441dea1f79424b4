"""MRI in, morphometry out: load -> levels -> segment (or import labels) -> quantify -> files.

`run_segmentation` writes, into one folder and only when all are complete:
labels.nii.gz (the input's own grid and affine), morphometry.json, morphometry.csv, qc.png.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from imaging.io import Image, load_image, same_grid, save_on_input_grid
from imaging.labels import muscle_label_map, vertebra_convention
from imaging.levels import Levels, levels_from_vertebrae
from imaging.morphometry import Morphometry
from imaging.qc import draw_qc
from imaging.quantify import quantify
from imaging.segment import segment
from lumbar_twin import __version__
from lumbar_twin.errors import InputError
from lumbar_twin.fileio import staged_directory, write_json_atomic, write_text_atomic

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
                     label_map: str | Path | None = None, subject: str | None = None) -> SegmentationResult:
    """Segment and quantify a lumbar MRI; every input fault is raised before anything is written."""
    if image is not None:
        raise InputError(image, "single-contrast images are not supported yet: give Dixon --water and --fat")
    if water is None or fat is None:
        raise InputError(None, "give both --water and --fat (Dixon)", field="--water/--fat")
    water_img = load_image(water, "water image")
    fat_img = _on_grid(load_image(fat, "fat image"), water_img, fat)
    if vertebrae is None:
        raise InputError(None, "automatic level detection is not available yet: give --vertebrae "
                               "(vertebral bodies L1..L5 = 1..5, S1 = 6, or --vertebra-labels)", field="--vertebrae")
    vert_img = _on_grid(load_image(vertebrae, "vertebra label map"), water_img, vertebrae)
    convention = vertebra_convention(vertebra_labels)
    levels = levels_from_vertebrae(np.rint(vert_img.data).astype(np.int32), convention, str(vertebrae))
    spacing = water_img.spacing_mm

    if labels is not None:
        if label_map is None:
            raise InputError(labels, "an external label map needs --label-map (name -> value JSON)")
        muscle_labels = _import_labels(_on_grid(load_image(labels, "label map"), water_img, labels), label_map)
    else:
        muscle_labels = segment(water_img.data, fat_img.data, np.rint(vert_img.data).astype(np.int32),
                                convention, spacing)

    water_hash = water_img.content_hash()
    pseudonym = subject or f"subject-{water_hash}"
    morphometry = quantify(muscle_labels, water_img.data, fat_img.data, water_img.affine, levels, pseudonym)
    morphometry = replace(morphometry, provenance={
        "toolkit": "lumbar-twin", "toolkit_version": __version__,
        "method": "imported label map" if labels is not None else "built-in seeded watershed (imaging.segment)",
        "fat_fraction": "Dixon F/(F+W), Rician-corrected, signal-weighted over each muscle at the disc",
        "levels_found": list(levels.found), "levels_missing": list(levels.missing),
        "inputs": {"water": water_hash, "fat": fat_img.content_hash()},
        "voxel_mm": [round(v, 4) for v in spacing],
    })
    out_dir = Path(out_dir)
    with staged_directory(out_dir) as stage:
        save_on_input_grid(muscle_labels, water_img, stage / "labels.nii.gz")
        write_json_atomic(stage / "morphometry.json", morphometry.to_dict())
        write_text_atomic(stage / "morphometry.csv", morphometry_csv(morphometry))
        draw_qc(water_img.data, muscle_labels, levels, morphometry, spacing, stage / "qc.png",
                title=f"{pseudonym}: {', '.join(levels.found)}")
    return SegmentationResult(morphometry, levels, muscle_labels, out_dir)


def morphometry_csv(morphometry: Morphometry) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["subject", "muscle", "side", "level", "csa_mm2", "lean_csa_mm2", "fat_fraction"])
    for m in morphometry.muscles:
        writer.writerow([morphometry.subject, m.muscle, m.side, m.level, m.csa_mm2, m.lean_csa_mm2, m.fat_fraction])
    return buffer.getvalue()


def _on_grid(other: Image, reference: Image, path) -> Image:
    if not same_grid(other, reference):
        raise InputError(path, f"grid {other.shape} does not match the water image grid {reference.shape}")
    return other


def _import_labels(image: Image, mapping_path) -> np.ndarray:
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


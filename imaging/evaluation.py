"""A label map against reference labels: the figures issue 11 sets its targets in.

Used by benchmarks/segmentation_accuracy.py and the tests; useful to anyone who holds manual
labels of their own scans. Arrays are canonical (RAS) label maps in imaging.labels values.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imaging.io import load_image
from imaging.labels import MUSCLE_LABELS
from imaging.levels import Levels
from imaging.morphometry import Morphometry
from imaging.pipeline import import_labels
from imaging.quantify import quantify


@dataclass(frozen=True)
class Agreement:
    """One muscle and side against its reference."""

    dice: float
    #: |CSA - reference CSA| / reference CSA on every slice the reference holds (fractions).
    slice_csa_error: np.ndarray
    #: |CSA - reference CSA| / reference CSA at each disc level found, from quantify (fractions).
    level_csa_error: np.ndarray
    #: |fat fraction - reference's| at each level (reference: the fat fraction read inside the
    #: reference outline, or the truth of a phantom).
    level_ff_error: np.ndarray
    #: |CSA - reference CSA| (mm^2) at the levels whose reference section is under
    #: `min_csa_area_mm2` (left out of level_csa_error); empty by default.
    small_csa_error_mm2: np.ndarray = field(default_factory=lambda: np.zeros(0))


def dice(labels: np.ndarray, reference: np.ndarray, value: int) -> float:
    """Dice overlap of one label value (1.0 when both are empty)."""
    a, b = labels == value, reference == value
    total = int(a.sum() + b.sum())
    return 1.0 if total == 0 else 2.0 * float((a & b).sum()) / total


def agreement(labels: np.ndarray, reference: np.ndarray, water: np.ndarray, fat: np.ndarray, affine: np.ndarray,
              levels: Levels, keys=None, truth: Morphometry | None = None,
              min_ff_area_mm2: float = 0.0, min_csa_area_mm2: float = 0.0) -> dict[tuple[str, str], Agreement]:
    """Per (muscle, side) in `keys` (default: every muscle the reference holds): Dice over the
    volume, per-slice and per-level CSA error, per-level fat-fraction error (at levels whose
    reference section is at least `min_ff_area_mm2`). Levels whose reference section is under
    `min_csa_area_mm2` give their CSA error in mm^2 (small_csa_error_mm2) instead of as a
    fraction. Levels are compared with quantify on both label maps; `truth` (a phantom's exact
    morphometry) replaces the reference's own quantification where given."""
    keys = keys or [key for key, value in MUSCLE_LABELS.items() if np.any(reference == value)]
    ours = quantify(labels, water, fat, affine, levels, "labels")
    ref = truth if truth is not None else quantify(reference, water, fat, affine, levels, "reference")
    out = {}
    for key in keys:
        value = MUSCLE_LABELS[key]
        per_a = (labels == value).sum(axis=(0, 1)).astype(float)
        per_b = (reference == value).sum(axis=(0, 1)).astype(float)
        held = per_b > 0
        level_csa, level_ff, small = [], [], []
        for level in levels.found:
            got, want = ours.get(*key, level), ref.get(*key, level)
            if want is None or want.csa_mm2 <= 0:
                continue  # the reference does not hold it at this level
            if want.csa_mm2 < min_csa_area_mm2:
                small.append(abs((got.csa_mm2 if got is not None else 0.0) - want.csa_mm2))
                continue
            if got is None:  # the reference holds it, the labels do not: all of it missed
                level_csa.append(1.0)
                continue
            level_csa.append(abs(got.csa_mm2 - want.csa_mm2) / want.csa_mm2)
            if want.csa_mm2 >= min_ff_area_mm2:
                level_ff.append(abs(got.fat_fraction - want.fat_fraction))
        out[key] = Agreement(dice(labels, reference, value), np.abs(per_a[held] - per_b[held]) / per_b[held],
                             np.array(level_csa), np.array(level_ff), np.array(small))
    return out


def load_reference_subject(water: str | Path, fat: str | Path, vertebrae: str | Path, labels: str | Path,
                           label_map: str | Path) -> dict:
    """A Dixon scan with reference labels, canonical: water, fat, affine, vertebrae (int32),
    reference (uint8 toolkit values through `label_map`, as `segment --label-map` reads it)."""
    water_img = load_image(water, "water image")
    reference = import_labels(load_image(labels, "reference label map"), label_map)
    return dict(water=water_img.data, fat=load_image(fat, "fat image").data, affine=water_img.affine,
                vertebrae=np.rint(load_image(vertebrae, "vertebra label map").data).astype(np.int32),
                reference=reference)


def coarsened(subject: dict, factor: int) -> dict:
    """A subject (load_reference_subject's dict) on voxels `factor` x larger in-plane: water and
    fat are averaged over each factor x factor block of voxels (the partial volume a scanner's
    larger voxels see; k-space truncation is not modelled), the reference and vertebra maps take
    each block's most frequent label (ties to the lower value). Slices are kept. The volume is
    cropped to a multiple of `factor`; the affine places each new voxel at its block's centre.
    Raises ValueError for a factor under 1."""
    if factor < 1:
        raise ValueError(f"factor must be a whole number of voxels >= 1, got {factor}")
    nx, ny = (n - n % factor for n in subject["water"].shape[:2])

    def blocks(a: np.ndarray) -> np.ndarray:  # (nx/f, ny/f, nz, f*f)
        a = a[:nx, :ny]
        b = a.reshape(nx // factor, factor, ny // factor, factor, a.shape[2]).transpose(0, 2, 4, 1, 3)
        return b.reshape(*b.shape[:3], factor * factor)

    def majority(a: np.ndarray) -> np.ndarray:
        b = blocks(a)
        values = np.unique(b)
        counts = np.stack([(b == v).sum(axis=-1) for v in values], axis=-1)
        return values[np.argmax(counts, axis=-1)].astype(a.dtype)

    affine = subject["affine"].copy()
    affine[:3, 3] = subject["affine"][:3, :3] @ np.array([(factor - 1) / 2, (factor - 1) / 2, 0.0]) + affine[:3, 3]
    affine[:3, :2] *= factor
    return dict(subject, water=blocks(subject["water"].astype(np.float32)).mean(axis=-1),
                fat=blocks(subject["fat"].astype(np.float32)).mean(axis=-1), affine=affine,
                vertebrae=majority(subject["vertebrae"]), reference=majority(subject["reference"]))

"""Segmentation accuracy against reference labels (issue 11): per muscle and side, Dice, CSA
error at every disc level (median, 90th percentile; on the real scan also per slice; levels
whose reference section is under MIN_CSA_AREA_MM2 on a line of their own, in mm^2) and
fat-fraction error, for each built-in segmenter and, as the peer in the same run, the label
import of the reference labels themselves (what quantification alone gets wrong).

Data sets:
- real: tests/data/realmri/dixon_subject1, a real 3 T Dixon scan with manual erector spinae
  and multifidus labels (no psoas, no quadratus lumborum; levels L2-L3 .. L4-L5). Its fat
  fraction reference is what the pipeline reads inside the manual outline.
- real2mm: the same scan on 2.04 x 2.04 mm voxels (imaging.evaluation.coarsened: water and fat
  averaged over 2 x 2 blocks, labels by block majority; slices kept at 4 mm), the coarse end of
  the in-plane sizes issue 11 names, on real anatomy.
- phantom: `lumbar-twin phantom` (imaging/phantom.py), noise 2-6 %, four habitus variants.
- anatomic: the phantom family written independently of the segmenters from anatomy
  references (imaging/anatomic_phantom.py).
Phantom references are their exact truth at each disc plane.

    python benchmarks/segmentation_accuracy.py                      # everything, 10 subjects a family
    python benchmarks/segmentation_accuracy.py --data real --method anatomical
    python benchmarks/segmentation_accuracy.py --data phantom anatomic --first-seed 400 --subjects 20
    python benchmarks/segmentation_accuracy.py --levels image     # no vertebra map: levels found on the image

With `--levels image` the segmenters get the vertebral bodies found on the image
(imaging.find_levels) instead of the reference vertebra map, numbered from the sacrum; where that
is refused (no sacrum or iliac wings in view), from the true lowest disc, as a user would name it
with `segment --lowest-disc`. Each subject's line says which, and how far (mm) the found disc
planes lie from the reference ones. Scores are still taken at the reference levels.
"""
from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np

from imaging.evaluation import agreement, coarsened, load_reference_subject
from imaging.find_levels import find_spine
from imaging.labels import DEFAULT_VERTEBRA_LABELS, MUSCLE_LABELS
from imaging.levels import levels_from_vertebrae
from imaging.pipeline import SEGMENTERS
from lumbar_twin.errors import InputError

REAL = Path(__file__).resolve().parents[1] / "tests" / "data" / "realmri"
PHANTOM_NOISES = (0.02, 0.04, 0.06)
PHANTOM_VARIANTS = (None, "atrophy", "slim", "large")
PEER = "label import"
#: Sections this small hold too few voxels for a fat fraction (as in tests/imaging).
MIN_FAT_AREA_MM2 = 200.0
#: A reference section under this is a muscle's tail, not a section to measure in percent: the
#: anatomic family's quadratus lumborum at L5-S1 (20-66 mm^2, 13-40 voxels; the muscle ends on
#: the iliac crest and iliolumbar ligament about there, and the healthy template gives it 60
#: mm^2, "mostly absent"), where a ring of border voxels is 40-70 % of the area. Every other
#: section of the healthy template is at least 342 mm^2 (quadratus lumborum at L1-L2,
#: data/lumbar_template.yaml). Such rows are scored in mm^2 on a line of their own, not dropped.
MIN_CSA_AREA_MM2 = 100.0


def real_subject(folder: Path = REAL) -> dict:
    """The real Dixon subject, canonical, with its manual labels in toolkit values."""
    files = {part: folder / f"dixon_subject1_{part}.nii.gz" for part in ("water", "fat", "vertebrae", "labels_manual")}
    subject = load_reference_subject(files["water"], files["fat"], files["vertebrae"], files["labels_manual"],
                                     folder / "labels_manual.json")
    return dict(subject, name="real dixon_subject1", truth=None)


def phantom_subject(family: str, seed: int) -> dict:
    if family == "phantom":
        from imaging.phantom import make_phantom
        ph = make_phantom(seed, noise=PHANTOM_NOISES[seed % 3], variant=PHANTOM_VARIANTS[seed % 4])
    else:
        from imaging.anatomic_phantom import make_anatomic_phantom
        ph = make_anatomic_phantom(seed)
    canonical = {k: nib.as_closest_canonical(nib.Nifti1Image(np.asarray(getattr(ph, k)), ph.affine))
                 for k in ("water", "fat", "labels", "vertebrae")}
    arrays = {k: np.asarray(img.dataobj) for k, img in canonical.items()}
    return dict(name=f"{family} {seed}", water=arrays["water"].astype(np.float32), fat=arrays["fat"].astype(np.float32),
                affine=canonical["water"].affine, vertebrae=np.rint(arrays["vertebrae"]).astype(np.int32),
                reference=np.rint(arrays["labels"]).astype(np.uint8), truth=ph.truth)


def load_subject(data: str, seed: int | None) -> dict:
    """One subject of a data set (module docstring)."""
    if data == "real":
        return real_subject()
    if data == "real2mm":
        return dict(coarsened(real_subject(), 2), name="real dixon_subject1 at 2 mm")
    return phantom_subject(data, seed)


def found_vertebrae(subject: dict, spacing, levels) -> tuple[np.ndarray, str]:
    """Vertebral bodies found on the image, and how the discs were numbered (with the largest
    distance in mm between a found disc plane and the reference one)."""
    try:
        found, how = find_spine(subject["water"], subject["fat"], spacing), "numbered from the sacrum"
    except InputError as exc:
        lowest = levels.found[-1]  # the reference's lowest disc, as the user would name it
        found, how = find_spine(subject["water"], subject["fat"], spacing, lowest_disc=lowest), \
            f"anchored at {lowest} (not from the sacrum: {exc.problem.split(':')[0]})"
    common = [lv for lv in levels.disc_slice if lv in found.levels.disc_slice]
    error = max((abs(found.levels.disc_slice[lv] - levels.disc_slice[lv]) * spacing[2] for lv in common),
                default=np.nan)
    missing = [lv for lv in levels.found if lv not in found.levels.disc_slice]
    return found.vertebrae.astype(np.int32), f"{how}; disc planes within {error:.1f} mm" + \
        (f"; not found: {', '.join(missing)}" if missing else "")


def evaluate(job: tuple) -> list[dict]:
    """Rows (data, subject, method, muscle, side, figures) for one subject and every method."""
    data, seed, methods, level_source = job
    subject = load_subject(data, seed)
    spacing = tuple(float(v) for v in np.linalg.norm(subject["affine"][:3, :3], axis=0))
    levels = levels_from_vertebrae(subject["vertebrae"], DEFAULT_VERTEBRA_LABELS)
    vertebrae = subject["vertebrae"]
    if level_source == "image":
        vertebrae, how = found_vertebrae(subject, spacing, levels)
        print(f"{subject['name']}: levels {how}", flush=True)
    rows = []
    for method in methods + [PEER]:
        start = time.perf_counter()
        try:
            labels = subject["reference"] if method == PEER else SEGMENTERS[method][0](
                subject["water"], subject["fat"], vertebrae, DEFAULT_VERTEBRA_LABELS, spacing)
        except InputError as exc:  # a segmenter that gives up on a subject: every muscle scores zero
            print(f"{subject['name']}: {method} failed: {exc}", flush=True)
            labels = np.zeros_like(subject["reference"])
        seconds = time.perf_counter() - start
        found = agreement(labels, subject["reference"], subject["water"], subject["fat"], subject["affine"], levels,
                          truth=subject["truth"], min_ff_area_mm2=MIN_FAT_AREA_MM2,
                          min_csa_area_mm2=MIN_CSA_AREA_MM2)
        for (muscle, side), a in found.items():
            rows.append(dict(data=data, subject=subject["name"], method=method, muscle=muscle, side=side,
                             dice=a.dice, slice_csa=a.slice_csa_error, level_csa=a.level_csa_error, ff=a.level_ff_error,
                             small_csa=a.small_csa_error_mm2,
                             levels=len(levels.found), seconds=seconds))
    return rows


def summarise(rows: list[dict]) -> str:
    lines = [f"{'data':9s} {'method':12s} {'muscle':19s} {'side':5s} {'Dice med':>8s} {'min':>6s} "
             f"{'CSA err med':>11s} {'p90':>6s} {'slice med':>9s} {'p90':>6s} {'FF err med':>10s} {'p90':>6s}"]
    keys = sorted({(r["data"], r["method"], r["muscle"], r["side"]) for r in rows},
                  key=lambda k: (k[0], k[1] == PEER, k[1], list(MUSCLE_LABELS).index((k[2], k[3]))))
    for data, method, muscle, side in keys:
        sel = [r for r in rows if (r["data"], r["method"], r["muscle"], r["side"]) == (data, method, muscle, side)]
        dice = np.array([r["dice"] for r in sel])
        level = np.concatenate([r["level_csa"] for r in sel]) if sel else np.array([])
        per_slice = np.concatenate([r["slice_csa"] for r in sel])
        ff = np.concatenate([r["ff"] for r in sel])
        pct = lambda x, q: f"{np.percentile(x, q):6.1%}" if x.size else "     -"  # noqa: E731
        lines.append(f"{data:9s} {method:12s} {muscle:19s} {side:5s} {np.median(dice):8.3f} {dice.min():6.3f} "
                     f"{pct(level, 50):>11s} {pct(level, 90)} {pct(per_slice, 50):>9s} {pct(per_slice, 90)} "
                     f"{(f'{np.median(ff):10.3f}' if ff.size else '         -')} "
                     f"{(f'{np.percentile(ff, 90):6.3f}' if ff.size else '     -')}")
    small = [(key, np.concatenate([r["small_csa"] for r in rows if (r["data"], r["method"], r["muscle"], r["side"]) == key]))
             for key in keys]
    small = [(key, errors) for key, errors in small if errors.size]
    if small:
        lines.append(f"\nLevels whose reference section is under {MIN_CSA_AREA_MM2:.0f} mm^2 (not in the CSA columns above): "
                     "|CSA error| in mm^2")
        lines += [f"{data:9s} {method:12s} {muscle:19s} {side:5s} {errors.size:3d} levels, median {np.median(errors):5.0f}, "
                  f"max {errors.max():5.0f} mm^2" for (data, method, muscle, side), errors in small]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["real", "real2mm", "phantom", "anatomic"],
                        choices=["real", "real2mm", "phantom", "anatomic"])
    parser.add_argument("--method", nargs="+", default=list(SEGMENTERS), choices=list(SEGMENTERS))
    parser.add_argument("--first-seed", type=int, default=400)
    parser.add_argument("--subjects", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--levels", choices=["labels", "image"], default="labels",
                        help="vertebral bodies from the reference vertebra map (default) or found on the image")
    args = parser.parse_args()
    jobs = [(data, None, args.method, args.levels) for data in args.data if data.startswith("real")]
    jobs += [(data, seed, args.method, args.levels) for data in args.data if not data.startswith("real")
             for seed in range(args.first_seed, args.first_seed + args.subjects)]
    rows = []
    with ProcessPoolExecutor(args.workers) as pool:
        for job, future in [(job, pool.submit(evaluate, job)) for job in jobs]:
            try:
                result = future.result()
            except InputError as exc:  # the subject itself cannot be read or numbered
                print(f"{job[0]} {job[1]}: {exc}", flush=True)
                continue
            rows += result
            first = result[0]
            seconds = {r["method"]: r["seconds"] for r in result if r["method"] != PEER}
            print(f"{first['subject']}: levels {first['levels']}, min Dice "
                  + ", ".join(f"{m} {min(r['dice'] for r in result if r['method'] == m):.3f} ({seconds[m]:.1f} s)"
                              for m in seconds), flush=True)
    print()
    print(summarise(rows))


if __name__ == "__main__":
    main()

"""Segmentation + quantification time and peak memory.

1. A real 400 x 400 x 29 Dixon scan (tests/data/realmri, 1.02 x 1.02 x 4 mm), the issue 11
   target: under 20 s and 2 GB on a 2-core machine, each built-in segmenter.
2. A 256 x 256 x 60 phantom, the earlier target (under 10 s): Dixon with each segmenter, the
   single-contrast path (--image t1.nii.gz) and Dixon without a vertebra label map.
3. Imported segmentations to morphometry, the issue 12 target (under 10 s on 2 cores): the real
   Dixon scan's manual labels, TotalSegmentator's total_mr output of the real T1 scan (numbered
   with --lowest-disc), and a T2-weighted stack (the Dixon scan's water + fat read as
   --image-contrast t2) with the manual labels.
Each case runs the whole `imaging.pipeline.run_segmentation` (load, levels, segment, quantify,
write the four files) in a fresh process, so its peak memory is its own. The naive peer in the
same run: a single global fat-fraction threshold with no muscle told apart.

    python benchmarks/segmentation_speed.py
"""
from __future__ import annotations

import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np

from imaging.io import load_image
from imaging.phantom import make_phantom, write_phantom
from imaging.pipeline import SEGMENTERS, run_segmentation

REAL = Path(__file__).resolve().parents[1] / "tests" / "data" / "realmri"


def _case(kwargs: dict) -> tuple[float, float, tuple]:
    """(seconds, peak MB of this process, levels found) for one run_segmentation call."""
    start = time.perf_counter()
    result = run_segmentation(accept_implausible=True, **kwargs)
    return time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, \
        result.levels.found


def _fresh(kwargs: dict):
    with ProcessPoolExecutor(1) as pool:  # one process a case: its own peak memory
        return pool.submit(_case, kwargs).result()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        real = {"water": REAL / "dixon_subject1_water.nii.gz", "fat": REAL / "dixon_subject1_fat.nii.gz",
                "vertebrae": REAL / "dixon_subject1_vertebrae.nii.gz"}
        print("real Dixon 400 x 400 x 29 (target < 20 s, < 2 GB):")
        for method in SEGMENTERS:
            seconds, peak, levels = _fresh(dict(out_dir=tmp / f"real_{method}", method=method, **real))
            met = "met" if seconds < 20 and peak < 2048 else "NOT met"
            print(f"  {method:10s} {seconds:6.2f} s  peak {peak:5.0f} MB  ({met}; levels {', '.join(levels)})")

        print("imported segmentations to morphometry (target < 10 s):")
        manual = dict(labels=REAL / "dixon_subject1_labels_manual.nii.gz", label_map=REAL / "labels_manual.json")
        totalseg = REAL / "t1_subject3_labels_totalsegmentator.nii.gz"
        in_phase = load_image(real["water"])
        t2_like = tmp / "t2_like.nii.gz"
        nib.save(nib.Nifti1Image(in_phase.data + load_image(real["fat"]).data, in_phase.affine), str(t2_like))
        vertebrae = nib.as_closest_canonical(nib.load(str(real["vertebrae"])))
        labels = nib.as_closest_canonical(nib.load(str(manual["labels"])))
        nib.save(vertebrae, str(tmp / "v.nii.gz"))
        nib.save(labels, str(tmp / "l.nii.gz"))
        for name, kwargs in (
                ("real Dixon, manual labels", dict(**real, **manual)),
                ("real T1, TotalSegmentator total_mr", dict(image=REAL / "t1_subject3_image.nii.gz", labels=totalseg,
                                                            label_map="totalsegmentator-total-mr", vertebrae=totalseg,
                                                            vertebra_labels="totalsegmentator-total-mr",
                                                            lowest_disc="L1-L2")),
                ("T2 stack 400 x 400 x 29, manual labels", dict(image=t2_like, image_contrast="t2",
                                                                vertebrae=tmp / "v.nii.gz", labels=tmp / "l.nii.gz",
                                                                label_map=manual["label_map"]))):
            seconds, peak, levels = _fresh(dict(out_dir=tmp / name.replace(" ", "_").replace(",", ""), **kwargs))
            print(f"  {name:40s} {seconds:6.2f} s  peak {peak:5.0f} MB  ({'met' if seconds < 10 else 'NOT met'}; "
                  f"levels {', '.join(levels)})")

        phantom = make_phantom(seed=42, noise=0.04, orientation=("L", "P", "S"), shape=(256, 256, 60))
        files = write_phantom(phantom, tmp / "phantom")
        dixon = {"water": files["water"], "fat": files["fat"], "vertebrae": files["vertebrae"]}
        print("phantom 256 x 256 x 60 (target < 10 s):")
        for method in SEGMENTERS:
            seconds, peak, _ = _fresh(dict(out_dir=tmp / f"ph_{method}", method=method, **dixon))
            print(f"  {method:10s} {seconds:6.2f} s  peak {peak:5.0f} MB")
        seconds, peak, _ = _fresh(dict(out_dir=tmp / "t1", image=files["t1"], vertebrae=files["vertebrae"]))
        print(f"  single-contrast T1 (--image) {seconds:6.2f} s  peak {peak:5.0f} MB")
        seconds, peak, levels = _fresh(dict(out_dir=tmp / "auto", water=files["water"], fat=files["fat"]))
        print(f"  Dixon without --vertebrae    {seconds:6.2f} s  peak {peak:5.0f} MB  (levels {', '.join(levels)})")

        start = time.perf_counter()
        water, fat = load_image(real["water"]).data, load_image(real["fat"]).data
        naive = (fat / np.maximum(water + fat, 1e-6) < 0.5) & (water > 0.3 * np.percentile(water, 99))
        print(f"naive peer, real scan: one global fat-fraction threshold (no muscles told apart) "
              f"{time.perf_counter() - start:.2f} s, {int(naive.sum())} voxels")


if __name__ == "__main__":
    main()

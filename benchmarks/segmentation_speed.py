"""Segmentation + quantification time and peak memory for a 256 x 256 x 60 Dixon volume.

Makes a phantom on that grid, then times the whole `imaging.pipeline.run_segmentation` (load,
levels, segment, quantify, write the four files) and, in the same run, the naive peer: a single
global fat-fraction threshold with no muscle separation (what a quick manual ROI tool does), for
the time it takes. Also the single-contrast path (--image t1.nii.gz) and the Dixon path without
a vertebra label map (levels found on the image). Target: under 10 s on a 2-core machine.

    python benchmarks/segmentation_speed.py
"""
from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from imaging.io import load_image
from imaging.phantom import make_phantom, write_phantom
from imaging.pipeline import run_segmentation


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        phantom = make_phantom(seed=42, noise=0.04, orientation=("L", "P", "S"), shape=(256, 256, 60))
        files = write_phantom(phantom, tmp / "phantom")
        made = time.perf_counter() - start
        rss_before = _peak_rss_mb()

        start = time.perf_counter()
        result = run_segmentation(tmp / "out", water=files["water"], fat=files["fat"], vertebrae=files["vertebrae"])
        ours = time.perf_counter() - start

        start = time.perf_counter()
        single = run_segmentation(tmp / "out_t1", image=files["t1"], vertebrae=files["vertebrae"])
        single_time = time.perf_counter() - start

        start = time.perf_counter()
        auto = run_segmentation(tmp / "out_auto", water=files["water"], fat=files["fat"])
        auto_time = time.perf_counter() - start

        start = time.perf_counter()
        water, fat = load_image(files["water"]).data, load_image(files["fat"]).data
        naive = (fat / np.maximum(water + fat, 1e-6) < 0.5) & (water > 0.3)
        naive_time = time.perf_counter() - start

    print(f"volume 256 x 256 x 60, voxels {np.round(phantom.affine[:3, :3].__abs__().sum(0), 2)} mm "
          f"(phantom made in {made:.1f} s)")
    print(f"lumbar-twin segment + quantify + write: {ours:6.2f} s   (target < 10 s: {'met' if ours < 10 else 'NOT met'})")
    print(f"single-contrast T1 (--image), same volume:  {single_time:6.2f} s   "
          f"(levels {', '.join(single.levels.found)})")
    print(f"Dixon without --vertebrae (levels found):   {auto_time:6.2f} s   (levels {', '.join(auto.levels.found)})")
    print(f"naive global threshold (no muscles told apart): {naive_time:6.2f} s, {int(naive.sum())} voxels")
    print(f"levels found: {', '.join(result.levels.found)}")
    print(f"peak memory: {_peak_rss_mb():.0f} MB (before segmentation {rss_before:.0f} MB)")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


if __name__ == "__main__":
    main()

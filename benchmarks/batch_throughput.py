"""Batch throughput: items per minute with 1 and 2 worker processes on this machine.

Runs the same manifest (the sample patient and a second from a morphometry file, over the four
exercises: 8 items of a full 200-trial plan each, verification included) into fresh folders with
--workers 1 and --workers 2, and prints items per minute, the speed-up and peak memory of one
worker. The naive peer is the single worker.

    python benchmarks/batch_throughput.py [--trials 200] [--items 8]
"""
from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

from lumbar_twin import DATA_DIR
from app.batch import run_batch

ROWS = [
    ("patient.json", "", "", "trunk_extension", "multifidus=0.25"),
    ("patient.json", "", "", "isometric_hold", "multifidus=0.25"),
    ("patient.json", "", "", "lateral_bend", "erector_spinae=0.15"),
    ("patient.json", "", "", "axial_rotation", "multifidus=0.15"),
    ("", "morphometry.json", "male,41,1.81,84", "trunk_extension", "erector_spinae=0.2"),
    ("", "morphometry.json", "male,41,1.81,84", "isometric_hold", "multifidus=0.25"),
    ("", "morphometry.json", "male,41,1.81,84", "lateral_bend", "erector_spinae=0.15"),
    ("", "morphometry.json", "male,41,1.81,84", "axial_rotation", "multifidus=0.15"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--items", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in ("patient.json", "morphometry.json"):
            shutil.copy(DATA_DIR / "sample" / name, tmp / name)
        lines = ["id,patient,morphometry,sex,age,height_m,mass_kg,exercise,targets,trials,seed"]
        for k in range(args.items):
            patient, morphometry, anthropometry, exercise, targets = ROWS[k % len(ROWS)]
            lines.append(f"I{k:03d},{patient},{morphometry},{anthropometry or ',,,'},{exercise},{targets},{args.trials},{k}")
        (tmp / "manifest.csv").write_text("\n".join(lines) + "\n")
        rates = {}
        for workers in (1, 2):
            start = time.perf_counter()
            rows = run_batch(tmp / "manifest.csv", tmp / f"out{workers}", workers=workers, say=lambda _: None)
            minutes = (time.perf_counter() - start) / 60
            done = sum(r["status"] == "done" for r in rows)
            rates[workers] = done / minutes
            print(f"{workers} worker(s): {done}/{len(rows)} items in {minutes * 60:.0f} s = {rates[workers]:.1f} items/min")
        print(f"speed-up with 2 workers: {rates[2] / rates[1]:.2f}x on a {args.items}-item manifest of "
              f"{args.trials}-trial plans")
        print(f"peak memory of one worker process (the largest child): "
              f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MB; this process "
              f"(which also ran the 1-worker batch): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()

"""Time to a verified plan, trials per second, what-if latency, and a naive baseline.

On the sample twin, for each chosen exercise:
  - make_plan with 200 trials (TPE, in memory): search (constraints held for the point
    estimate and the weakest and strongest plausible patient), then both verifications: the
    two-engine check at every device sample and OpenSim's own StaticOptimization + JointReaction
    on model.osim for the three patients; prints the search rate (trials/s), each stage and the
    wall time to a verified plan (target: under 10 s on a 2-core machine); `--uncertainty none`
    times the point estimate alone for comparison;
  - in the same run, a naive baseline: constant forces over a grid of magnitudes and
    directions, evaluated by the same code for as long as the optuna search took; prints the
    best feasible target error and mean deviation each reaches in that time;
  - what-if: an exported profile scaled by 1.2 through `what_if` (target: about 1 s).

    python benchmarks/planning_speed.py [--exercises trunk_extension,lateral_bend] [--trials 200]
"""
from __future__ import annotations

import argparse
import itertools
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import opensim as osim

from lumbar_twin import DATA_DIR
from planning.evaluate import (Evaluator, constraint_values, mean_activations, precompute, search_frames,
                               target_objective)
from planning.exercise import load_exercise
from planning.planner import make_plan, plan_for
from planning.profile import Profile, sample_times
from planning.report import write_plan
from planning.whatif import what_if
from twin.build import build_twin
from twin.simulate import load_twin

TARGETS = {"trunk_extension": {"multifidus": 0.25}, "isometric_hold": {"multifidus": 0.25},
           "lateral_bend": {"erector_spinae": 0.15}, "axial_rotation": {"multifidus": 0.15}}


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (OpenSim's re-solve workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exercises", default="trunk_extension,lateral_bend")
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--uncertainty", choices=("morphometry", "none"), default="morphometry")
    args = parser.parse_args()
    osim.Logger.setLevelString("error")

    with tempfile.TemporaryDirectory() as tmp:
        build_twin(DATA_DIR / "sample" / "patient.json", Path(tmp) / "twin")
        twin = load_twin(Path(tmp) / "twin")
        print(f"sample twin: {len(twin.spec.fascicles)} fascicles; {args.trials} trials a plan\n")
        print(f"uncertainty: {args.uncertainty}; machine: {os.cpu_count()} cores, load average "
              f"{os.getloadavg()[0]:.1f} at the start (other jobs share it)\n")
        print(f"{'exercise':16s} {'trials/s':>8s} {'search s':>8s} {'2-engine s':>10s} {'OpenSim s':>9s} "
              f"{'plan s':>7s} {'CPU s':>6s} {'optuna err':>10s} {'dev':>6s} {'grid err':>9s} {'dev':>6s} "
              f"{'grid n':>6s}")
        for name in args.exercises.split(","):
            plan = plan_for(twin, exercise=name, targets=TARGETS[name], search={"trials": args.trials},
                            uncertainty=args.uncertainty)
            start, cpu = time.perf_counter(), _cpu_s()
            result = make_plan(twin, plan)
            wall, cpu = time.perf_counter() - start, _cpu_s() - cpu
            t = result.timings_s
            deviation = _deviation(result.mean_activation(), plan)
            grid_error, grid_dev, grid_n = _grid_baseline(twin, plan, budget_s=t["search_s"])
            print(f"{name:16s} {args.trials / t['search_s']:8.1f} {t['search_s']:8.2f} "
                  f"{t['precompute_s'] + t['verify_s'] - t['opensim_s']:10.2f} {t['opensim_s']:9.2f} "
                  f"{wall:7.2f} {cpu:6.2f} {result.chosen.error:10.4f} {deviation:6.3f} {grid_error:9.4f} "
                  f"{grid_dev:6.3f} "
                  f"{grid_n:6d}")
            if name == args.exercises.split(",")[0]:
                out = Path(tmp) / "plan"
                write_plan(result, out)
                start = time.perf_counter()
                what_if(twin, out / "profile.json", scale=1.2)
                whatif_s = time.perf_counter() - start
        print(f"\nwhat-if (profile x 1.2, every device sample, MuJoCo): {whatif_s:.2f} s (target about 1 s)")
        print("err: target error (RMS over frames + RMS of mean bias); dev: worst |mean activation - target| "
              "of any targeted side;\ngrid: constant forces over magnitudes x directions for the same time as "
              "the optuna search, best feasible.")
        print("plan s: wall time to a verified plan; CPU s: CPU time for it, this process and OpenSim's worker "
              "processes together\n(with other jobs on the machine the workers wait for cores: wall >= CPU / cores).")
        print("2-engine: precompute and the consistency check at every device sample, all patients; OpenSim: "
              "StaticOptimization + JointReaction in worker processes, 24 samples + the peaks "
              "for the point estimate, 6 + the peaks for the weakest and strongest plausible patient.")
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
        print(f"peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def _deviation(means: dict, plan) -> float:
    return max(abs(means[t.label][side] - t.value) for t in plan.targets for side in t.sides)


def _grid_baseline(twin, plan, budget_s: float) -> tuple[float, float, int]:
    """Constant forces, coarse to fine over magnitude, for `budget_s` of evaluation."""
    exercise = load_exercise(plan.exercise)
    spec, device = twin.spec, plan.device
    times = sample_times(exercise.cycle_s, device.rate_hz)
    index = search_frames(len(times), plan.search.eval_frames)
    evaluator = Evaluator(spec, precompute(spec, exercise, times, plan.contact).subset(index))
    push = spec.contact(plan.contact).push_direction
    tilts = (0.0, device.cone_deg / 2, device.cone_deg)
    azimuths = (0.0, 90.0, 180.0, -90.0)
    best, best_dev, n, start = np.inf, np.nan, 0, time.perf_counter()
    for level in itertools.count(1):  # 2, 4, 8 ... magnitudes: the grid refines while time lasts
        for magnitude in np.linspace(0, device.max_force_N, 2**level + 1)[1::2] if level > 1 else (0.0, device.max_force_N):
            for tilt, azimuth in itertools.product(tilts, azimuths):
                if time.perf_counter() - start > budget_s:
                    return best, best_dev, n
                profile = Profile(plan.contact, exercise.cycle_s, (float(magnitude),), tilt, azimuth)
                _, forces = profile.samples(device, push)
                evaluation = evaluator(forces[index])
                n += 1
                if all(v <= 0 for v in constraint_values(evaluation, plan.limits, plan.search.margin).values()):
                    error = target_objective(evaluation, plan.targets, exercise.cycle_s)
                    if error < best:
                        best = error
                        best_dev = _deviation(mean_activations(evaluation, plan.targets, exercise.cycle_s), plan)
    return best, best_dev, n


if __name__ == "__main__":
    main()

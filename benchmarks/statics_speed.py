"""Per-frame cost of lumbar-twin's quasi-static path against OpenSim's own StaticOptimization.

Times, on the sample twin, the whole frame (moment arms, inverse dynamics, static optimisation,
intervertebral loads):
  - single frames: independent random postures, each solved from scratch;
  - a frame batch: a smooth exercise trajectory, each frame warm-started from the one before;
and, in the same run, OpenSim's StaticOptimization (AnalyzeTool) on the exported model.osim
(with reserve actuators, as OpenSim needs) over the same trajectory. Prints both per frame,
the ratio, peak memory, how far the two engines' activations differ, and what explains it:
OpenSim's SO again from a zero-speed states file and/or with reserves weighted as the toolkit's.

    python benchmarks/statics_speed.py [--frames 60]
"""
from __future__ import annotations

import argparse
import math
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import opensim as osim

from lumbar_twin import DATA_DIR
from twin.build import build_twin
from twin.posture import posture
from planning.opensim_solve import CONVERGENCE, add_reserves, states_file
from twin.statics import RESERVE_WEIGHT, Statics

RESERVE_OPTIMAL_FORCE_NM = 1.0  # OpenSim reserves: control x 1 N m, so reserves are expensive
#: F_opt at which OpenSim's reserve cost (r / F_opt)^2 equals the toolkit's RESERVE_WEIGHT r^2.
RESERVE_MATCHED_NM = 1.0 / math.sqrt(RESERVE_WEIGHT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60, help="frames in the trajectory (>= 6)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats of the toolkit timings")
    args = parser.parse_args()
    osim.Logger.setLevelString("error")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        twin = build_twin(DATA_DIR / "sample" / "patient.json", tmp / "twin")
        spec = twin.spec
        times = np.linspace(0.0, 2.0, args.frames)
        flexion_deg = 30.0 - 30.0 * np.cos(2 * math.pi * times / times[-1])  # 0 -> 60 -> 0 deg
        trajectory = [posture(spec, math.radians(a)) for a in flexion_deg]
        rng = np.random.default_rng(0)
        randoms = [posture(spec, *np.radians([rng.uniform(-10, 60), rng.uniform(-15, 15), rng.uniform(-10, 10)]))
                   for _ in range(args.frames)]

        statics = Statics(spec)
        statics.solve(randoms[0])
        single = min(_timed(lambda: [statics.solve(p) for p in randoms]) for _ in range(args.repeats))
        batch = min(_timed(lambda: statics.solve_many(trajectory)) for _ in range(args.repeats))
        ours = statics.solve_many(trajectory)
        rss_toolkit = _peak_rss_mb()

        setup = _opensim_setup(tmp, twin.files["model.osim"], spec, times, trajectory)
        start = time.perf_counter()
        osim.AnalyzeTool(str(setup)).run()
        opensim_total = time.perf_counter() - start
        theirs = _read_storage(tmp / "results" / "lumbar_StaticOptimization_activation.sto", spec.fascicle_names)
        # What separates the two: OpenSim's SO from a coordinates file differentiates splines into
        # velocities and accelerations (inertia and force-velocity enter), and its reserve cost
        # (r / F_opt)^2 differs from the toolkit's w r^2 unless F_opt = 1/sqrt(w). Neither has
        # passive fibre force. Each variant changes one of them.
        variants = {}
        for label, use_states, fopt in (("coordinates file, reserves F_opt 1 N m (as above)", False, 1.0),
                                        ("coordinates file, reserves F_opt 1/sqrt(w)", False, RESERVE_MATCHED_NM),
                                        ("states file, zero speeds, reserves F_opt 1 N m", True, 1.0),
                                        ("states file, zero speeds, reserves F_opt 1/sqrt(w)", True,
                                         RESERVE_MATCHED_NM)):
            folder = tmp / f"variant{len(variants)}"
            folder.mkdir()
            variant = _opensim_setup(folder, twin.files["model.osim"], spec, times, trajectory,
                                     reserve_fopt=fopt, states=use_states)
            osim.AnalyzeTool(str(variant)).run()
            variants[label] = _read_storage(folder / "results" / "lumbar_StaticOptimization_activation.sto",
                                            spec.fascicle_names)

    n = args.frames
    per_single, per_batch, per_opensim = single / n * 1e3, batch / n * 1e3, opensim_total / n * 1e3
    ours_act = np.array([r.activations for r in ours])
    diff = ours_act[: len(theirs)] - theirs
    rms_rest = float(np.sqrt(np.mean(diff[0] ** 2))) if len(theirs) else float("nan")
    rms_all = float(np.sqrt(np.mean(diff**2))) if len(theirs) else float("nan")
    print(f"model: {len(spec.bodies)} bodies, {len(spec.coordinates)} coordinates, {len(spec.fascicles)} fascicles; "
          f"{n} frames, lumbar flexion 0 -> 60 -> 0 deg")
    print(f"lumbar-twin, single frames (cold, random postures): {per_single:8.3f} ms/frame")
    print(f"lumbar-twin, frame batch (warm-started trajectory): {per_batch:8.3f} ms/frame")
    print(f"OpenSim StaticOptimization (AnalyzeTool):           {per_opensim:8.3f} ms/frame")
    print(f"ratio OpenSim / lumbar-twin: {per_opensim / per_single:.0f}x (single), {per_opensim / per_batch:.0f}x (batch)")
    print(f"target < 0.5 ms/frame: single {'met' if per_single < 0.5 else 'NOT met'}, "
          f"batch {'met' if per_batch < 0.5 else 'NOT met'}")
    print(f"peak memory: {rss_toolkit:.0f} MB after the toolkit runs, {_peak_rss_mb():.0f} MB after OpenSim's "
          f"(one process: OpenSim, MuJoCo and numpy loaded)")
    print(f"activation RMS difference, lumbar-twin vs OpenSim SO: {rms_rest:.3f} in the first frame, "
          f"{rms_all:.3f} over the movement")
    print("what explains it (RMS over the movement / largest |difference| of any fascicle in any frame):")
    for label, values in variants.items():
        gap = ours_act[: len(values)] - values
        print(f"  {label:52s} {np.sqrt(np.mean(gap**2)):.4f} / {np.abs(gap).max():.4f}"
              + ("" if len(values) == n else f"  ({len(values)} of {n} frames solved)"))


def _timed(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _opensim_setup(tmp: Path, model_path: Path, spec, times, trajectory, reserve_fopt: float = RESERVE_OPTIMAL_FORCE_NM,
                   states: bool = False) -> Path:
    """A model with reserves, a motion (or zero-speed states) file and an AnalyzeTool setup in XML."""
    model = osim.Model(str(model_path))
    add_reserves(model, spec.coordinate_names, reserve_fopt, max_control=1e4)
    with_reserves = tmp / "model_reserves.osim"
    model.printToXML(str(with_reserves))

    motion = tmp / "trajectory.mot"
    names = spec.coordinate_names
    lines = ["trajectory", "version=1", f"nRows={len(times)}", f"nColumns={len(names) + 1}", "inDegrees=no",
             "endheader", "\t".join(["time", *names])]
    lines += ["\t".join([f"{t:.6f}", *(f"{pose[c]:.10f}" for c in names)]) for t, pose in zip(times, trajectory)]
    motion.write_text("\n".join(lines) + "\n")

    tool = osim.AnalyzeTool()
    tool.setName("lumbar")
    tool.setModelFilename(str(with_reserves))
    if states:
        model.initSystem()
        poses = np.array([[pose.get(c, 0.0) for c in spec.coordinate_names] for pose in trajectory])
        tool.setStatesFileName(str(states_file(tmp, model, spec.coordinate_names, spec.fascicle_names,
                                               np.asarray(times), poses)))
    else:
        tool.setCoordinatesFileName(str(motion))
    tool.setLowpassCutoffFrequency(-1)
    tool.setInitialTime(float(times[0]))
    tool.setFinalTime(float(times[-1]))
    tool.setResultsDir(str(tmp / "results"))
    analysis = osim.StaticOptimization()
    analysis.setStartTime(float(times[0]))
    analysis.setEndTime(float(times[-1]))
    analysis.setUseModelForceSet(True)
    analysis.setActivationExponent(2)
    if states:  # the verification's settings (planning/opensim_verify.py)
        analysis.setConvergenceCriterion(CONVERGENCE)
    tool.getAnalysisSet().cloneAndAppend(analysis)
    setup = tmp / "setup_so.xml"
    tool.printToXML(str(setup))
    return setup


def _read_storage(path: Path, names) -> np.ndarray:
    if not path.exists():
        return np.empty((0, len(names)))
    table = osim.TimeSeriesTable(str(path))
    labels = list(table.getColumnLabels())
    columns = [table.getDependentColumn(name).to_numpy() for name in names if name in labels]
    return np.array(columns).T


if __name__ == "__main__":
    main()

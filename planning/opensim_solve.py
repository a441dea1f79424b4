"""OpenSim's StaticOptimization + JointReaction on one run of device samples, in any process.

The verification (planning/opensim_verify.py) splits its samples into runs of at least six
(StaticOptimization's minimum) and solves them in worker processes: IPOPT spends about 70 ms
a frame on a 124-muscle twin, almost all of it outside its iterations (a looser convergence
criterion saves under 10 %), so frames, not tolerances, are what to spread over the cores.
`solve_in_processes` runs them in fresh interpreters (`python -m planning.opensim_solve`) that
import only numpy and opensim (about 0.3 s) and never the caller's script, so it works the
same from a script without a `__main__` guard, a notebook or a threaded server.

Measured pitfalls (docs/planning.md, shared NOTES): the states file gives every speed zero
(quasi-static, as the toolkit; a coordinates file makes StaticOptimization differentiate
splines into velocities and accelerations); IPOPT's convergence criterion 1e-6 (1e-8 sometimes
reports failure with balanced accelerations); in OpenSim 4.6 JointReaction reads a forces file's
first n-actuator columns but looks each actuator up by its position in the whole file, and
StaticOptimization's own file lists the joint springs first, so it is rewritten with actuators
only.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import opensim as osim

from lumbar_twin.errors import LumbarTwinError

#: IPOPT convergence criterion (1e-8 sometimes fails with balanced accelerations; NOTES.md).
CONVERGENCE = 1e-6
#: StaticOptimization refuses fewer frames than this.
MIN_FRAMES = 6


@dataclass(frozen=True)
class SolveRun:
    """One StaticOptimization + JointReaction run, in plain data (it crosses process borders).

    times_s: (n,) s, n >= 6. poses: (n, coordinates) rad, in `coordinate_names` order.
    forces_N: (n, 3) robot force in the contact body's frame, applied at `contact_location_m`
    (m, that body's frame). max_isometric_force_N: (fascicles,) N in `fascicle_names` order,
    or None for the model's own. level_joints: ((joint name, child body), ...) caudal last.
    """

    model_path: str
    fascicle_names: tuple[str, ...]
    coordinate_names: tuple[str, ...]
    level_joints: tuple[tuple[str, str], ...]
    contact_body: str
    contact_location_m: tuple[float, float, float]
    reserve_optimal_force_Nm: float
    times_s: np.ndarray
    poses: np.ndarray
    forces_N: np.ndarray
    max_isometric_force_N: np.ndarray | None = None


def solve(run: SolveRun) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(activations (n, fascicles), reserve moments (n, coordinates) N m, reactions
    (n, levels, 3) N on each level's upper vertebra in its own frame). Raises LumbarTwinError
    if OpenSim's tools fail or skip a frame."""
    if len(run.times_s) < MIN_FRAMES:
        raise LumbarTwinError(f"OpenSim's StaticOptimization needs at least {MIN_FRAMES} frames")
    with tempfile.TemporaryDirectory(prefix="lumbar-twin-osim-") as tmp:
        return _solve(Path(tmp), run)


def _solve(tmp: Path, run: SolveRun):
    model = osim.Model(run.model_path)
    muscles = model.getMuscles()
    if run.max_isometric_force_N is not None:
        for name, value in zip(run.fascicle_names, run.max_isometric_force_N):
            muscles.get(name).setMaxIsometricForce(float(value))
    add_reserves(model, run.coordinate_names, run.reserve_optimal_force_Nm)
    model_file = tmp / "model_with_reserves.osim"
    model.printToXML(str(model_file))
    model.initSystem()

    times = np.asarray(run.times_s, float)
    external = _external_loads(tmp, run, times)
    states = states_file(tmp, model, run.coordinate_names, run.fascicle_names, times, run.poses)
    t0, t1 = float(times[0]), float(times[-1])

    so = osim.StaticOptimization()
    so.setStartTime(t0)
    so.setEndTime(t1)
    so.setUseModelForceSet(True)
    so.setActivationExponent(2)
    so.setUseMusclePhysiology(True)
    so.setConvergenceCriterion(CONVERGENCE)
    so.setMaxIterations(500)
    _run(tmp, "so", model_file, states, external, so, t0, t1)
    activation_table = osim.TimeSeriesTable(str(tmp / "so" / "so_StaticOptimization_activation.sto"))
    force_table = osim.TimeSeriesTable(str(tmp / "so" / "so_StaticOptimization_force.sto"))
    so_times = np.array(activation_table.getIndependentColumn())
    if len(so_times) != len(times) or np.abs(so_times - times).max() > 1e-6:
        raise LumbarTwinError(f"OpenSim's StaticOptimization solved {len(so_times)} of {len(times)} frames")
    activations = _columns(activation_table, run.fascicle_names)
    reserves = _columns(force_table, [f"reserve_{c}" for c in run.coordinate_names])  # N m

    # JointReaction: actuators only, in the model's actuator order (OpenSim 4.6 reads them by position).
    actuators = model.getActuators()
    names = [actuators.get(k).getName() for k in range(actuators.getSize())]
    forces_file = write_storage(tmp / "actuator_forces.sto", "actuator_forces", times, names,
                                _columns(force_table, names), in_degrees=False)
    jr = osim.JointReaction()
    jr.setName("JointReaction")
    jr.setStartTime(t0)
    jr.setEndTime(t1)
    jr.setForcesFileName(str(forces_file))
    jr.setJointNames(_array([joint for joint, _ in run.level_joints]))
    jr.setOnBody(_array(["child"] * len(run.level_joints)))
    jr.setInFrame(_array(["child"] * len(run.level_joints)))
    _run(tmp, "jr", model_file, states, external, jr, t0, t1)
    table = osim.TimeSeriesTable(str(tmp / "jr" / "jr_JointReaction_ReactionLoads.sto"))
    reactions = np.stack([_columns(table, [f"{joint}_on_{child}_in_{child}_f{axis}" for axis in "xyz"])
                          for joint, child in run.level_joints], axis=1)
    return activations, reserves, reactions


def add_reserves(model: osim.Model, coordinate_names, optimal_force_Nm: float, max_control: float = 1e6) -> None:
    """One CoordinateActuator `reserve_<coordinate>` per coordinate (StaticOptimization's
    reserves), controls within +-max_control; finalizes the model's connections."""
    for name in coordinate_names:
        reserve = osim.CoordinateActuator(name)
        reserve.setName(f"reserve_{name}")
        reserve.setOptimalForce(float(optimal_force_Nm))
        reserve.setMinControl(-max_control)
        reserve.setMaxControl(max_control)
        model.addForce(reserve)
    model.finalizeConnections()


def _run(tmp: Path, name: str, model_file: Path, states: Path, external: Path, analysis, t0: float, t1: float):
    tool = osim.AnalyzeTool()
    tool.setName(name)
    tool.setModelFilename(str(model_file))
    tool.setStatesFileName(str(states))
    tool.setExternalLoadsFileName(str(external))
    tool.setLowpassCutoffFrequency(-1)
    tool.setInitialTime(t0)
    tool.setFinalTime(t1)
    tool.setResultsDir(str(tmp / name))
    tool.getAnalysisSet().cloneAndAppend(analysis)
    setup = tmp / f"setup_{name}.xml"
    tool.printToXML(str(setup))  # AnalyzeTool built in code loses its model; run it from its file
    level = osim.Logger.getLevelString()
    if level in ("warn", "info"):  # JointReaction warns that a forces file overrides the states' fibre state: by design
        osim.Logger.setLevelString("error")
    try:
        ok = osim.AnalyzeTool(str(setup)).run()
    except Exception as exc:  # OpenSim raises its own exception types through SWIG
        raise LumbarTwinError(f"OpenSim's {type(analysis).__name__} failed: {exc}") from exc
    finally:
        osim.Logger.setLevelString(level)
    if not ok:
        raise LumbarTwinError(f"OpenSim's {type(analysis).__name__} did not run")


def states_file(tmp: Path, model: osim.Model, coordinate_names, fascicle_names, times: np.ndarray,
                poses: np.ndarray) -> Path:
    """tmp/states.sto: every coordinate's value per frame (poses: (n, coordinates) rad) and every
    speed zero (quasi-static). `model` must have had initSystem() (absolute paths)."""
    coords = model.getCoordinateSet()
    poses = np.asarray(poses, float)
    columns, values = [], []
    for k, name in enumerate(coordinate_names):
        path = coords.get(name).getAbsolutePathString()
        columns += [f"{path}/value", f"{path}/speed"]
        values += [poses[:, k], np.zeros(len(times))]
    for name in fascicle_names:  # not used by StaticOptimization; given to keep OpenSim from warning
        columns.append(f"{model.getMuscles().get(name).getAbsolutePathString()}/activation")
        values.append(np.full(len(times), 0.5))
    return write_storage(tmp / "states.sto", "states", times, columns, np.array(values).T, in_degrees=False)


def _external_loads(tmp: Path, run: SolveRun, times: np.ndarray) -> Path:
    """The robot's force as an ExternalForce on the contact body at the pad, in the body frame."""
    forces = np.asarray(run.forces_N, float)
    point = np.tile(np.asarray(run.contact_location_m, float), (len(times), 1))
    data = write_storage(tmp / "robot_force.mot", "robot_force", times,
                         [f"robot_force_v{a}" for a in "xyz"] + [f"robot_force_p{a}" for a in "xyz"]
                         + [f"robot_torque_{a}" for a in "xyz"],
                         np.hstack([forces, point, np.zeros_like(forces)]), in_degrees=False)
    force = osim.ExternalForce()
    force.setName("robot")
    force.set_applied_to_body(run.contact_body)
    force.set_force_expressed_in_body(run.contact_body)
    force.set_point_expressed_in_body(run.contact_body)
    force.set_force_identifier("robot_force_v")
    force.set_point_identifier("robot_force_p")
    force.set_torque_identifier("robot_torque_")
    force.set_data_source_name("robot_force")
    loads = osim.ExternalLoads()
    loads.setDataFileName(str(data))
    loads.cloneAndAppend(force)
    path = tmp / "external_loads.xml"
    loads.printToXML(str(path))
    return path


def write_storage(path: Path, name: str, times: np.ndarray, columns: list[str], values: np.ndarray,
                  in_degrees: bool) -> Path:
    """An OpenSim storage file (.sto/.mot): `values` (rows, columns) under a time column."""
    lines = [name, "version=1", f"nRows={len(times)}", f"nColumns={len(columns) + 1}",
             f"inDegrees={'yes' if in_degrees else 'no'}", "endheader", "\t".join(["time", *columns])]
    lines += ["\t".join([f"{t:.9f}", *(f"{v:.12g}" for v in row)]) for t, row in zip(times, values)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _columns(table: osim.TimeSeriesTable, names) -> np.ndarray:
    labels = set(table.getColumnLabels())
    missing = [n for n in names if n not in labels]
    if missing:
        raise LumbarTwinError(f"OpenSim's results lack the columns {missing[:3]}")
    return np.array([table.getDependentColumn(n).to_numpy() for n in names]).T


def _array(items) -> osim.ArrayStr:
    out = osim.ArrayStr()
    for item in items:
        out.append(item)
    return out


def timed_solve(run: SolveRun) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], float]:
    """solve(run) and the seconds it took."""
    start = time.perf_counter()
    answer = solve(run)
    return answer, time.perf_counter() - start


def solve_in_processes(runs: list[SolveRun], workers: int) -> list:
    """[(solve(run), seconds), ...] in the order of `runs`, spread round-robin over `workers`
    worker interpreters (in this process when workers <= 1). Raises LumbarTwinError with the
    worker's message when a run fails."""
    if workers <= 1 or len(runs) <= 1:
        return [timed_solve(run) for run in runs]
    shares = [list(range(k, len(runs), workers)) for k in range(min(workers, len(runs)))]
    # One thread each: the workers already fill the cores, and BLAS/OpenMP pools in every worker
    # would compete for them.
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), *filter(None, [os.environ.get("PYTHONPATH")])]))
    level = osim.Logger.getLevelString()
    with tempfile.TemporaryDirectory(prefix="lumbar-twin-osim-workers-") as tmp:
        workers_ = []
        for k, share in enumerate(shares):
            job, result = Path(tmp) / f"job{k}.pickle", Path(tmp) / f"result{k}.pickle"
            job.write_bytes(pickle.dumps((level, [runs[i] for i in share])))
            workers_.append((subprocess.Popen([sys.executable, "-m", "planning.opensim_solve", str(job), str(result)],
                                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), result))
        answers: list = [None] * len(runs)
        failures = []
        for (process, result), share in zip(workers_, shares):
            _, stderr = process.communicate()
            if process.returncode != 0 or not result.exists():
                lines = stderr.decode(errors="replace").strip().splitlines()
                failures.append(lines[-1] if lines else f"worker exited with status {process.returncode}")
                continue
            status, payload = pickle.loads(result.read_bytes())
            if status != "ok":
                failures.append(payload)
                continue
            for i, answer in zip(share, payload):
                answers[i] = answer
    if failures:
        raise LumbarTwinError(failures[0])
    return answers


def _worker(job: Path, result: Path) -> None:
    level, runs = pickle.loads(job.read_bytes())
    osim.Logger.setLevelString(level)  # a fresh interpreter starts at OpenSim's default, info
    try:
        payload = ("ok", [timed_solve(run) for run in runs])
    except LumbarTwinError as exc:
        payload = ("error", str(exc))
    tmp = result.with_suffix(".part")
    tmp.write_bytes(pickle.dumps(payload))
    tmp.replace(result)


if __name__ == "__main__":
    _worker(Path(sys.argv[1]), Path(sys.argv[2]))

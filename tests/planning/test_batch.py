"""Batch: failures isolated, resume after kill -9, Dask, and workers sharing a PostgreSQL study
(issue 6, items 3 and 4)."""
import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.batch import read_manifest, run_batch
from lumbar_twin.errors import InputError

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample"


def _manifest(tmp_path, rows):
    path = tmp_path / "manifest.csv"
    shutil.copy(SAMPLE / "patient.json", tmp_path / "patient.json")
    shutil.copy(SAMPLE / "morphometry.json", tmp_path / "morphometry.json")
    header = "id,patient,morphometry,sex,age,height_m,mass_kg,exercise,targets,limits,trials,seed\n"
    path.write_text(header + "".join(r + "\n" for r in rows))
    return path


GOOD_A = "A,patient.json,,,,,,isometric_hold,multifidus=0.25,,12,0"
BAD_B = "B,,missing.json,female,50,1.65,60,isometric_hold,multifidus=0.25,,12,0"
GOOD_C = "C,,morphometry.json,male,41,1.81,84,trunk_extension,multifidus=0.25;erector_spinae=0.2,,12,0"


def test_manifest_faults_name_the_file_and_line(tmp_path):
    with pytest.raises(InputError, match="line 3: id 'A' appears twice"):
        read_manifest(_manifest(tmp_path, [GOOD_A, GOOD_A]))
    with pytest.raises(InputError, match="unknown columns"):
        (tmp_path / "m.csv").write_text("id,colour\nA,red\n")
        read_manifest(tmp_path / "m.csv")


@pytest.mark.slow
def test_a_killed_batch_resumes_keeping_finished_items_and_isolating_the_bad_one(tmp_path):
    manifest = _manifest(tmp_path, [GOOD_A, BAD_B, GOOD_C])
    out = tmp_path / "batch"
    command = [sys.executable, "-m", "app.cli", "batch", str(manifest), "--out", str(out)]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finished = out / "items" / "A" / "result.json"
    deadline = time.time() + 120
    while not finished.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert finished.exists(), "item A never finished"
    os.killpg(process.pid, signal.SIGKILL)  # kill -9 in the middle of the batch
    process.wait()
    first_done = finished.stat().st_mtime_ns
    for item in (out / "items").iterdir():  # nothing half-written under a final name
        assert item.name.startswith(".") or (item / "result.json").exists()
    assert not (out / "summary.csv").exists() or process.returncode != 0

    lines = []
    rows = run_batch(manifest, out, say=lines.append)
    assert finished.stat().st_mtime_ns == first_done  # not recomputed
    status = {r["id"]: r["status"] for r in rows}
    assert status["A"] == "done (earlier run)" and status["C"] == "done" and status["B"] == "failed"
    assert "missing.json" in next(r for r in rows if r["id"] == "B")["message"]
    assert not [p for p in (out / "items").iterdir() if p.name.startswith(".")]  # leftovers cleaned
    summary = list(csv.DictReader(open(out / "summary.csv")))
    assert [r["id"] for r in summary] == ["A", "B", "C"]
    assert (out / "summary.png").stat().st_size > 5000
    assert (out / summary[2]["profile"]).exists()
    assert any("B: failed" in line for line in lines)


@pytest.mark.slow
def test_batch_runs_on_a_dask_local_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    manifest = _manifest(tmp_path, [GOOD_A, GOOD_C])
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        rows = run_batch(manifest, tmp_path / "batch", dask_address=cluster.scheduler_address, say=lambda _: None)
    assert [r["status"] for r in rows] == ["done", "done"]
    assert all((tmp_path / "batch" / r["profile"]).exists() for r in rows)


def _initdb() -> str | None:
    found = shutil.which("initdb") or sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return str(found[-1] if isinstance(found, list) and found else found) if found else None


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL server on loopback (.ci/run installs the Debian package); stopped after."""
    import socket
    import tempfile

    initdb = _initdb()
    if initdb is None:
        pytest.skip("PostgreSQL is not installed here (.ci/run installs it)")
    pg_ctl = str(Path(initdb).with_name("pg_ctl"))
    base = Path(tempfile.mkdtemp(prefix="lumbar-twin-pg-"))
    base.chmod(0o755)  # the postgres user must reach it when we are root
    (base / "sock").mkdir()
    password = "lumbar-twin-test"
    (base / "pw").write_text(password)
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        for path in (base, base / "sock", base / "pw"):
            shutil.chown(path, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = base / "data"
    subprocess.run(as_postgres + [initdb, "-D", str(data), "-U", "postgres", "-A", "scram-sha-256",
                                  f"--pwfile={base / 'pw'}"], check=True, capture_output=True)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={base / 'sock'}"
    subprocess.run(as_postgres + [pg_ctl, "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres:{password}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(as_postgres + [pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_two_planning_workers_share_one_postgresql_study(postgres_url, loaded_twin, tmp_path):
    import optuna

    from planning.planner import make_plan, plan_for

    trials, targets = 40, {"multifidus": 0.25}
    single = make_plan(loaded_twin, plan_for(loaded_twin, exercise="trunk_extension", targets=targets,
                                             search={"trials": trials}), opensim_verification=False)
    command = [sys.executable, "-m", "app.cli", "plan", str(loaded_twin.directory), "--exercise",
               "trunk_extension", "--targets", "multifidus=0.25", "--trials", str(trials), "--storage", postgres_url,
               "--study", "shared"]
    workers = [subprocess.Popen(command + ["--out", str(tmp_path / f"w{k}")], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for k in range(2)]
    outputs = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [err[-1500:] for _, err in outputs]
    assert "postgres:lumbar-twin-test@" not in "".join(o for pair in outputs for o in pair)  # no password shown

    study = optuna.load_study(study_name="shared", storage=postgres_url)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert trials <= len(complete) <= trials + 2
    ran = [int(out.split("searched ")[1].split(" trials")[0]) for out, _ in outputs]
    assert all(n > 0 for n in ran) and sum(ran) >= trials  # both did work on one study
    best_shared = min(t.values[0] for t in complete if all(v <= 0 for v in t.constraints.values()))
    assert best_shared <= 1.5 * single.chosen.error + 0.005  # together, the single-process quality
    import json
    for k in range(2):
        doc = json.loads((tmp_path / f"w{k}" / "profile.json").read_text())
        assert doc["verification"]["passed"] and "***" in doc["provenance"]["storage"]
        for side in ("left", "right"):
            assert abs(doc["predicted"]["mean_activation"]["multifidus"][side] - 0.25) <= 0.02

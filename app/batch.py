"""Batch: patients x exercises x targets from a manifest, in parallel, resumable, failures isolated.

Manifest (CSV, paths relative to it), one item per row:

    id,patient,morphometry,water,fat,vertebrae,sex,age,height_m,mass_kg,exercise,targets,limits,trials,seed
    S001-ext,patient.json,,,,,,,,,trunk_extension,multifidus=0.25,,200,0

A row names its patient by a patient file (`patient`), or by a morphometry file plus
anthropometry (`morphometry`, `sex`, `age`, `height_m`, `mass_kg`), or by Dixon images
(`water`, `fat`, `vertebrae`) plus anthropometry, which are segmented first. `targets` and
`limits` take the `plan` command's lists (`;` may stand for `,`).

Each item is made in a staging folder and renamed to DIR/items/<id> only when complete, so a
finished item is a folder that exists; an interrupted batch (even kill -9) resumes by skipping
those, and leaves no half-written item behind. Items run in worker processes (or on a Dask
cluster); one that fails is reported in DIR/summary.csv with its reason and does not stop the
others.
"""
from __future__ import annotations

import csv
import io
import multiprocessing
import os
import re
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from lumbar_twin.errors import InputError, LumbarTwinError
from lumbar_twin.fileio import read_json, write_json_atomic, write_text_atomic

COLUMNS = ("id", "patient", "morphometry", "water", "fat", "vertebrae", "sex", "age", "height_m", "mass_kg",
           "exercise", "targets", "limits", "trials", "seed")
SUMMARY_COLUMNS = ("id", "status", "exercise", "targets", "mean_activation", "rms_target_error",
                   "peak_compression_N", "peak_ap_shear_N", "verified_in", "seconds", "profile", "report", "message")
_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True)
class Item:
    id: str
    fields: dict[str, str]  # manifest row, paths made absolute
    out_dir: str  # the batch folder
    storage: str | None = None
    #: Processes for OpenSim's re-solve of this item's plan (None: the machine's cores); 1 when
    #: items already run side by side in worker processes or on Dask.
    opensim_workers: int | None = None


def read_manifest(path: str | Path) -> list[dict[str, str]]:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(path, f"cannot read the manifest ({exc.strerror})") from None
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise InputError(path, "the manifest has no rows")
    unknown = set(rows[0]) - set(COLUMNS)
    if unknown:
        raise InputError(path, f"unknown columns {sorted(unknown)}; columns are {', '.join(COLUMNS)}")
    seen = set()
    for n, row in enumerate(rows, start=2):
        item = (row.get("id") or "").strip()
        if not _ID.match(item):
            raise InputError(path, f"line {n}: id {item!r} must be 1-64 letters, digits, '.', '_' or '-'")
        if item in seen:
            raise InputError(path, f"line {n}: id {item!r} appears twice")
        seen.add(item)
        for key in ("patient", "morphometry", "water", "fat", "vertebrae"):
            if (row.get(key) or "").strip():
                row[key] = str((path.parent / row[key].strip()).resolve())
    return rows


def run_batch(manifest: str | Path, out_dir: str | Path, workers: int = 1, storage: str | None = None,
              dask_address: str | None = None, say: Callable[[str], None] = print) -> list[dict]:
    """Run every unfinished item; returns the summary rows (also written to DIR/summary.csv)."""
    rows = read_manifest(manifest)
    out = Path(out_dir)
    (out / "items").mkdir(parents=True, exist_ok=True)
    for leftover in (out / "items").glob(".*.staging.*"):  # from an interrupted run
        shutil.rmtree(leftover, ignore_errors=True)
    summary: dict[str, dict] = {}
    pending = []
    for row in rows:
        done = out / "items" / row["id"] / "result.json"
        if done.is_file():
            summary[row["id"]] = {**read_json(done), "status": "done (earlier run)"}
        else:
            pending.append(Item(row["id"], row, str(out), storage,
                                opensim_workers=1 if workers > 1 or dask_address else None))
    say(f"batch {manifest}: {len(rows)} items, {len(rows) - len(pending)} finished earlier, {len(pending)} to run "
        f"on {'Dask at ' + dask_address if dask_address else f'{workers} worker process(es)'}")
    for k, result in enumerate(_execute(pending, workers, dask_address), start=1):
        summary[result["id"]] = result
        say(f"[{k}/{len(pending)}] {result['id']}: {result['status']}"
            + (f" ({result['message']})" if result["status"] != "done" else
               f" (mean activation {result['mean_activation']}, peak compression {result['peak_compression_N']} N)")
            + f" {result['seconds']} s")
    ordered = [summary[row["id"]] for row in rows]
    write_text_atomic(out / "summary.csv", summary_csv(ordered))
    _summary_figure(ordered, out / "summary.png")
    failed = [r for r in ordered if not r["status"].startswith("done")]
    say(f"summary: {len(ordered) - len(failed)} done, {len(failed)} not"
        + (f" ({', '.join(r['id'] for r in failed)})" if failed else "") + f"; {out / 'summary.csv'}")
    return ordered


def run_item(item: Item) -> dict:
    """One manifest row, from its inputs to a verified profile. Never raises: a failure is a row."""
    start = time.perf_counter()
    final = Path(item.out_dir) / "items" / item.id
    stage = Path(tempfile.mkdtemp(prefix=f".{item.id}.staging.", dir=final.parent))
    row = {"id": item.id, "exercise": item.fields.get("exercise", ""), "targets": item.fields.get("targets", "")}
    try:
        row.update(_plan_item(item, stage))
        row.update(status="done", seconds=round(time.perf_counter() - start, 1), message="",
                   profile=f"items/{item.id}/plan/profile.json", report=f"items/{item.id}/plan/report.md")
        write_json_atomic(stage / "result.json", row)
        if final.exists():  # another worker sharing the storage finished it first: keep theirs
            shutil.rmtree(stage, ignore_errors=True)
        else:
            os.replace(stage, final)  # the item appears whole, or not at all
        return row
    except LumbarTwinError as exc:  # expected faults: bad input, infeasible plan
        status = "infeasible" if type(exc).__name__ == "Infeasible" else "failed"
        message = str(exc)
    except Exception as exc:  # a bug in one item must not stop the batch; keep its trace
        status, message = "error", f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    shutil.rmtree(stage, ignore_errors=True)
    return {**row, "status": status, "message": message, "seconds": round(time.perf_counter() - start, 1)}


def summary_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in SUMMARY_COLUMNS})
    return buffer.getvalue()


# -- internals -------------------------------------------------------------------------------

def _execute(items: list[Item], workers: int, dask_address: str | None):
    if not items:
        return
    if dask_address:
        from distributed import Client, as_completed as dask_completed

        with Client(dask_address) as client:
            futures = client.map(run_item, items, pure=False)
            for future in dask_completed(futures):
                yield future.result()
        return
    if workers <= 1:
        for item in items:
            yield run_item(item)
        return
    # Spawned workers: each imports the engines once, and none inherits the parent's state.
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(run_item, item): item for item in items}
        for future in as_completed(futures):
            try:
                yield future.result()
            except Exception as exc:  # the worker died (e.g. killed): report the item, go on
                item = futures[future]
                yield {"id": item.id, "exercise": item.fields.get("exercise", ""), "status": "error",
                       "message": f"worker died: {type(exc).__name__}: {exc}", "seconds": 0.0}


def _plan_item(item: Item, stage: Path) -> dict:
    import opensim

    from planning.plan import command_line_overlay
    from planning.planner import make_plan, plan_for
    from planning.report import write_plan
    from twin.build import build_twin
    from twin.simulate import load_twin

    opensim.Logger.setLevelString("warn")
    f = {k: (v or "").strip() for k, v in item.fields.items()}
    patient_file = _patient_file(item, f, stage)
    build_twin(patient_file, stage / "twin")
    twin = load_twin(stage / "twin")
    if not f.get("exercise"):
        raise InputError(None, "no exercise", field=f"manifest row {item.id}: exercise")
    overlay = command_line_overlay(f.get("targets", "").replace(";", ","), f.get("limits", "").replace(";", ",") or None)
    search = {k: f[k] for k in ("trials", "seed") if f.get(k)}
    plan = plan_for(twin, exercise=f["exercise"], **overlay, search=search)
    study = f"{item.id}-{plan.sha256()[:12]}" if item.storage else None
    result = make_plan(twin, plan, storage=item.storage, study=study, opensim_workers=item.opensim_workers)
    write_plan(result, stage / "plan")
    means = result.mean_activation()
    peak = result.verification.peak
    return {
        "mean_activation": "; ".join(f"{t}={v['left']:.3f}/{v['right']:.3f}" for t, v in means.items()),
        "rms_target_error": round(result.rms_target_error(), 4),
        "peak_compression_N": round(max(peak["compression_N"].values())),
        "peak_ap_shear_N": round(max(peak["ap_shear_N"].values())),
        "verified_in": result.verification.engine,
        "targets_value": {t.label: t.value for t in plan.targets},
        "compression_limit_N": min(plan.limits.compression_N.values()),
    }


def _patient_file(item: Item, f: dict[str, str], stage: Path) -> Path:
    """The row's patient file: given, or written from morphometry (measured here from images)."""
    if f.get("patient"):
        return Path(f["patient"])
    anthropometry = {}
    for key, kind in (("sex", str), ("age", int), ("height_m", float), ("mass_kg", float)):
        if not f.get(key):
            raise InputError(None, "give a patient file, or anthropometry (sex, age, height_m, mass_kg) with "
                                   "morphometry or images", field=f"manifest row {item.id}: {key}")
        try:
            anthropometry[key] = kind(f[key])
        except ValueError:
            raise InputError(None, f"{f[key]!r} is not a {kind.__name__}", field=f"manifest row {item.id}: {key}") from None
    if f.get("morphometry"):
        morphometry = f["morphometry"]
    elif f.get("water") and f.get("fat"):
        from imaging.pipeline import run_segmentation

        run_segmentation(stage / "segmentation", water=f["water"], fat=f["fat"], vertebrae=f.get("vertebrae") or None,
                         subject=item.id)
        morphometry = str(stage / "segmentation" / "morphometry.json")
    else:
        raise InputError(None, "give a patient file, a morphometry file or Dixon images (water, fat)",
                         field=f"manifest row {item.id}")
    path = stage / "patient.json"
    write_json_atomic(path, {"schema": "lumbar-twin/patient@1", "id": item.id, **anthropometry,
                             "morphometry": morphometry})
    return path


def _summary_figure(rows: list[dict], path: Path) -> None:
    import numpy as np
    from matplotlib.figure import Figure  # no pyplot: a notebook's backend stays as it is

    fig = Figure(figsize=(11, 0.45 * len(rows) + 1.6), constrained_layout=True)
    ax1, ax2 = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(rows))
    for k, row in enumerate(rows):
        if not row["status"].startswith("done"):
            ax1.text(0.01, k, f"{row['status']}: {str(row.get('message', ''))[-60:]}", va="center", color="tab:red",
                     fontsize=7, transform=ax1.get_yaxis_transform())
            continue
        targets = row.get("targets_value") or {}
        for label, pair in (part.split("=") for part in row["mean_activation"].split("; ")):
            left, right = (float(v) for v in pair.split("/"))
            ax1.plot([left, right], [k, k], "o-", color="tab:blue", ms=4)
            if label in targets:
                ax1.plot(targets[label], k, "|", color="k", ms=14, mew=2)
        ratio = float(row["peak_compression_N"]) / float(row.get("compression_limit_N") or np.nan)
        ax2.barh(k, ratio, color="tab:green" if ratio <= 1 else "tab:red")
    ax1.set_yticks(y, [f"{r['id']} ({r.get('exercise', '')})" for r in rows], fontsize=8)
    ax1.invert_yaxis()
    ax1.set_xlabel("mean activation left/right (|: target)")
    ax2.axvline(1.0, color="r", ls="--")
    ax2.set_xlabel("verified peak compression / limit")
    fig.suptitle("batch summary", fontsize=10)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)

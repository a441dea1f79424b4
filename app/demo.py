"""The whole pipeline on a synthetic patient and on a real scan, one stage after another, with
a report.

phantom MRI -> segmentation and morphometry -> patient file -> twin -> plan -> verification ->
device files, all under one folder with an index.html that shows every stage's pictures; then
the same for the real Dixon scan in tests/data/realmri (its README: source and licence), whose
erector spinae and multifidus are compared with its manual labels, under real/.

>>> run_demo("out/demo")                                   # doctest: +SKIP
"""
from __future__ import annotations

import html
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lumbar_twin import REPO_ROOT, __version__
from lumbar_twin.fileio import staged_directory, write_json_atomic, write_text_atomic

#: The real scan the demo also runs on (tests/data/realmri/README.md).
REAL_SCAN = REPO_ROOT / "tests" / "data" / "realmri"
#: Its volunteer's anthropometry is not published with the scan: a healthy adult's, stated so.
REAL_PATIENT = {"schema": "lumbar-twin/patient@1", "id": "REAL-DIXON-1", "sex": "male", "age": 30,
                "height_m": 1.78, "mass_kg": 75.0, "morphometry": "segmentation/morphometry.json",
                "limits": {"compression_N": 2500, "ap_shear_N": 700}}

#: The demo patient: anthropometry and clinical limits of the bundled sample patient.
DEMO_PATIENT = {"schema": "lumbar-twin/patient@1", "id": "DEMO-001", "sex": "female", "age": 52,
                "height_m": 1.66, "mass_kg": 68.0, "morphometry": "segmentation/morphometry.json",
                "limits": {"compression_N": 2500, "ap_shear_N": 700}}


@dataclass
class DemoResult:
    directory: Path
    figures: dict[str, dict] = field(default_factory=dict)  # stage -> its key figures
    timings_s: dict[str, float] = field(default_factory=dict)
    #: The real scan's figures (levels, agreement with its manual labels, plan, export).
    real: dict = field(default_factory=dict)


def run_demo(out_dir: str | Path, seed: int = 1, exercise: str = "trunk_extension",
             targets: dict[str, float] | None = None, trials: int = 200,
             say: Callable[[str], None] = print) -> DemoResult:
    from imaging.phantom import make_phantom, write_phantom
    from imaging.pipeline import run_segmentation
    from planning.export import check_profile
    from planning.planner import make_plan, plan_for
    from planning.report import target_table, write_plan
    from twin.build import build_twin
    from twin.simulate import load_twin

    targets = targets or {"multifidus": 0.25}
    out = Path(out_dir)
    result = DemoResult(out)
    clock = time.perf_counter()

    def lap(stage: str) -> float:
        nonlocal clock
        now = time.perf_counter()
        result.timings_s[stage] = now - clock
        clock = now
        return result.timings_s[stage]

    phantom = make_phantom(seed)
    with staged_directory(out / "mri") as stage:
        write_phantom(phantom, stage)
    say(f"1/5 phantom MRI (seed {seed}): Dixon water and fat, {phantom.water.shape} voxels, stored "
        f"{''.join(phantom.orientation)}, with its true labels and morphometry ({lap('phantom'):.1f} s)")

    mri = out / "mri"
    seg = run_segmentation(out / "segmentation", water=mri / "water.nii.gz", fat=mri / "fat.nii.gz",
                           vertebrae=mri / "vertebrae.nii.gz", subject="DEMO-001")
    accuracy = _against_truth(seg.morphometry, phantom.truth)
    result.figures["segmentation"] = accuracy
    say(f"2/5 segmentation: levels {', '.join(seg.levels.found)}; against the phantom's truth, CSA within 5 % "
        f"in {accuracy['csa_within_5pct']:.0%} of {accuracy['rows']} rows, median fat-fraction error "
        f"{accuracy['ff_error_median']:.3f} ({lap('segmentation'):.1f} s)")

    write_json_atomic(out / "patient.json", DEMO_PATIENT)
    built = build_twin(out / "patient.json", out / "twin")
    spec = built.spec
    result.figures["twin"] = {"bodies": len(spec.bodies), "coordinates": len(spec.coordinates),
                              "fascicles": len(spec.fascicles)}
    say(f"3/5 twin: {len(spec.bodies)} bodies, {len(spec.coordinates)} coordinates, {len(spec.fascicles)} "
        f"fascicles, muscle forces scaled from the measured lean CSA ({lap('twin'):.1f} s)")

    twin = load_twin(out / "twin")
    plan = plan_for(twin, exercise=exercise, targets=targets, search={"trials": trials, "seed": 0})
    planned = make_plan(twin, plan)
    rows = target_table(planned.mean_activation(), plan.targets)
    on_target = ", ".join(f"{label} {left:.3f}/{right:.3f} (target {value:g})" for label, value, left, right, _ in rows)
    result.figures["plan"] = {"trials": len(planned.search.candidates), "feasible": len(planned.search.feasible),
                              "trial": planned.chosen.number, "mean_activation": planned.mean_activation(),
                              "rms_target_error": planned.rms_target_error()}
    say(f"4/5 plan {exercise}: {len(planned.search.candidates)} trials, {len(planned.search.feasible)} feasible; "
        f"left/right {on_target}; verified in {planned.verification.engine}: "
        f"{'passed' if planned.verification.passed else 'FAILED'} ({lap('plan'):.1f} s)")

    files = write_plan(planned, out / "plan")
    problems = check_profile(files["json"], twin)  # with its twin: identity and MuJoCo at every sample
    peak = planned.verification.peak
    result.figures["export"] = {"check": "ok" if not problems else problems,
                                "peak_compression_N": max(peak["compression_N"].values()),
                                "peak_ap_shear_N": max(peak["ap_shear_N"].values())}
    say(f"5/5 export: {files['csv']} and {files['json']} ({len(planned.times_s)} samples at "
        f"{plan.device.rate_hz:g} Hz), check {'ok' if not problems else 'FAILED'}; peak compression "
        f"{result.figures['export']['peak_compression_N']:.0f} N (limit {min(plan.limits.compression_N.values()):.0f} N) "
        f"({lap('export'):.1f} s)")

    result.real = _real_scan(out / "real", exercise, targets, trials, say)
    lap("real scan")
    write_text_atomic(out / "index.html", _index_html(result, planned, rows))
    say(f"report: {out / 'index.html'}")
    return result


def _real_scan(out: Path, exercise: str, targets: dict[str, float], trials: int, say) -> dict:
    """The real Dixon scan through every stage: levels from its vertebra labels (L2-L3..L4-L5;
    the sacrum is not in view), the built-in segmenter, agreement with its manual labels, a twin
    that takes the template at the levels not in view, a plan, verification and export."""
    from imaging.evaluation import agreement, load_reference_subject
    from imaging.pipeline import run_segmentation
    from planning.export import check_profile
    from planning.planner import make_plan, plan_for
    from planning.report import write_plan
    from twin.build import build_twin
    from twin.simulate import load_twin

    scan = {role: REAL_SCAN / f"dixon_subject1_{role}.nii.gz" for role in ("water", "fat", "vertebrae")}
    seg = run_segmentation(out / "segmentation", subject=REAL_PATIENT["id"], **scan)
    subject = load_reference_subject(scan["water"], scan["fat"], scan["vertebrae"],
                                     REAL_SCAN / "dixon_subject1_labels_manual.nii.gz", REAL_SCAN / "labels_manual.json")
    found = agreement(seg.labels, subject["reference"], subject["water"], subject["fat"], subject["affine"], seg.levels)
    manual = {f"{muscle} {side}": {"dice": round(a.dice, 3),
                                   "csa_error_median": round(float(np.median(a.level_csa_error)), 3),
                                   "ff_error_median": round(float(np.median(a.level_ff_error)), 3)}
              for (muscle, side), a in found.items()}
    say("real scan (tests/data/realmri, Dixon, manual erector spinae and multifidus labels): levels "
        f"{', '.join(seg.levels.found)}; against the manual labels " +
        "; ".join(f"{k} Dice {v['dice']:.2f}, CSA error {v['csa_error_median']:.0%}" for k, v in manual.items()))
    write_json_atomic(out / "patient.json", REAL_PATIENT)
    built = build_twin(out / "patient.json", out / "twin")
    template_rows = [f"{u.muscle} {u.side} {u.level}" for u in built.morphometry_use if u.use == "template"]
    twin = load_twin(out / "twin")
    plan = plan_for(twin, exercise=exercise, targets=targets, search={"trials": trials, "seed": 0})
    planned = make_plan(twin, plan)
    files = write_plan(planned, out / "plan")
    problems = check_profile(files["json"], twin)  # with its twin: identity and MuJoCo at every sample
    say(f"real scan: twin with {len(template_rows)} of {len(built.morphometry_use)} muscle rows from the template "
        f"(levels not in view); plan verified: {'passed' if planned.verification.passed else 'FAILED'}, "
        f"check {'ok' if not problems else 'FAILED'}")
    return {"levels_found": list(seg.levels.found), "levels_missing": list(seg.levels.missing),
            "against_manual_labels": manual, "template_rows": len(template_rows),
            "rows": len(built.morphometry_use), "verified": bool(planned.verification.passed),
            "check": "ok" if not problems else problems, "mean_activation": planned.mean_activation()}


def _against_truth(measured, truth) -> dict:
    true = {(m.muscle, m.side, m.level): m for m in truth.muscles}
    csa_ok, ff_err = [], []
    for m in measured.muscles:
        t = true.get((m.muscle, m.side, m.level))
        if t is None:
            continue
        csa_ok.append(abs(m.csa_mm2 - t.csa_mm2) <= 0.05 * t.csa_mm2)
        ff_err.append(abs(m.fat_fraction - t.fat_fraction))
    return {"rows": len(csa_ok), "csa_within_5pct": float(np.mean(csa_ok)),
            "ff_error_median": float(np.median(ff_err)), "ff_error_max": float(np.max(ff_err))}


def _index_html(result: DemoResult, planned, rows) -> str:
    e = html.escape
    figures = result.figures
    seg = figures["segmentation"]
    target_rows = "".join(
        f"<tr><td>{e(label)}</td><td>{value:.3f}</td><td>{left:.3f}</td><td>{right:.3f}</td>"
        f"<td>{'yes' if ok else 'no'}</td></tr>" for label, value, left, right, ok in rows)
    limits = planned.plan.limits
    load_rows = "".join(
        f"<tr><td>{level}</td><td>{limits.compression_N[level]:.0f}</td>"
        f"<td>{planned.verification.peak['compression_N'][level]:.0f}</td><td>{limits.ap_shear_N[level]:.0f}</td>"
        f"<td>{planned.verification.peak['ap_shear_N'][level]:.0f}</td></tr>" for level in limits.compression_N)
    timings = ", ".join(f"{k} {v:.1f} s" for k, v in result.timings_s.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lumbar-twin demo</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto;line-height:1.4}}
img{{max-width:100%;border:1px solid #ccc}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}</style></head><body>
<h1>lumbar-twin demo: MRI to a verified robot force profile</h1>
<p>lumbar-twin {e(__version__)}. Synthetic patient DEMO-001 (a phantom MRI whose truth is known). Stages: {e(timings)}.</p>
<h2>1-2. MRI, segmentation and morphometry</h2>
<p>Psoas, quadratus lumborum, erector spinae and multifidus, left and right, at every disc level, on Dixon
water and fat images. Against the phantom's truth: CSA within 5 % in {seg['csa_within_5pct']:.0%} of
{seg['rows']} rows; fat-fraction error median {seg['ff_error_median']:.3f}, largest {seg['ff_error_max']:.3f}.
Files: <a href="segmentation/morphometry.json">morphometry.json</a>, <a href="segmentation/morphometry.csv">morphometry.csv</a>,
<a href="segmentation/labels.nii.gz">labels.nii.gz</a>.</p>
<img src="segmentation/qc.png" alt="segmentation QC">
<h2>3. The twin</h2>
<p>{figures['twin']['bodies']} bodies, {figures['twin']['coordinates']} coordinates, {figures['twin']['fascicles']} fascicles,
the same numbers in <a href="twin/model.osim">OpenSim</a> and <a href="twin/model.xml">MuJoCo</a>;
muscle forces follow the measured lean CSA (<a href="patient.json">patient.json</a>, <a href="twin/twin.json">twin.json</a>).</p>
<img src="twin/twin.png" alt="twin">
<h2>4. Plan: {e(planned.plan.exercise)} at {e(planned.plan.contact)}</h2>
<p>{figures['plan']['trials']} optuna trials, {figures['plan']['feasible']} feasible; trial {figures['plan']['trial']} chosen.
Mean activation over the cycle (left, right):</p>
<table><tr><th>target</th><th>value</th><th>left</th><th>right</th><th>within 0.02</th></tr>{target_rows}</table>
<img src="plan/cycle.png" alt="cycle"><img src="plan/history.png" alt="history"><img src="plan/pareto.png" alt="pareto">
<h2>5. Verification and export</h2>
<p>Verified in {e(planned.verification.engine)} at {planned.plan.device.rate_hz:g} Hz:
<b>{'passed' if planned.verification.passed else 'FAILED'}</b>; <code>lumbar-twin check</code>:
{e(str(figures['export']['check']))}. Peak loads against limits [N]:</p>
<table><tr><th>level</th><th>compression limit</th><th>verified peak</th><th>AP shear limit</th><th>verified peak</th></tr>{load_rows}</table>
<p>Device files: <a href="plan/profile.csv">profile.csv</a>, <a href="plan/profile.json">profile.json</a>;
<a href="plan/report.md">report.md</a>. Figures as JSON: <code>{e(json.dumps(figures['export']))}</code></p>
{_real_html(result.real)}
</body></html>
"""


def _real_html(real: dict) -> str:
    e = html.escape
    rows = "".join(f"<tr><td>{e(k)}</td><td>{v['dice']:.2f}</td><td>{v['csa_error_median']:.0%}</td>"
                   f"<td>{v['ff_error_median']:.3f}</td></tr>" for k, v in real["against_manual_labels"].items())
    return f"""<h2>6. The same on a real scan</h2>
<p>A real 3 T Dixon scan of a healthy volunteer (MyoSegmenTUM, Apache-2.0; tests/data/realmri/README.md) with manual
erector spinae and multifidus labels. Levels from its vertebra labels: {e(', '.join(real['levels_found']))}; not in
view: {e(', '.join(real['levels_missing']))} (the twin takes the template there: {real['template_rows']} of
{real['rows']} muscle rows, psoas and quadratus lumborum at the levels not in view among them). The built-in
segmenter against the manual labels (median over the levels in view):</p>
<table><tr><th>muscle</th><th>Dice</th><th>CSA error</th><th>fat-fraction error</th></tr>{rows}</table>
<p>Psoas and quadratus lumborum have no reference labels on this scan: their rows are the segmenter's, unchecked.</p>
<img src="real/segmentation/qc.png" alt="real scan QC"><img src="real/twin/twin.png" alt="real twin">
<p>Plan, verified: <b>{'passed' if real['verified'] else 'FAILED'}</b>; <code>lumbar-twin check</code>:
{e(str(real['check']))}. Files: <a href="real/plan/profile.csv">profile.csv</a>,
<a href="real/plan/profile.json">profile.json</a>, <a href="real/plan/report.md">report.md</a>,
<a href="real/segmentation/morphometry.json">morphometry.json</a>.</p>
<img src="real/plan/cycle.png" alt="real cycle">
"""

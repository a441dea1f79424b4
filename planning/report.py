"""A plan's output folder: device files, history, pictures and a short report, all or nothing."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from lumbar_twin.fileio import staged_directory, write_json_atomic, write_text_atomic
from planning.export import ROS2_FILE, write_profile_files
from planning.figures import cycle_figure, history_figure, pareto_figure
from twin.spec import LEVELS

#: A targeted group counts as on target when its mean is within this of the target (both sides).
ON_TARGET = 0.02


def write_plan(result, out_dir: str | Path, formats: tuple[str, ...] = ()) -> dict[str, Path]:
    """Everything lands in `out_dir` together, or nothing does."""
    out_dir = Path(out_dir)
    with staged_directory(out_dir) as stage:
        files = write_profile_files(stage, result, formats)
        files["plan"] = stage / "plan.json"
        write_json_atomic(files["plan"], result.plan.to_dict())
        files["history"] = stage / "history.csv"
        write_text_atomic(files["history"], history_csv(result.search))
        files["cycle_png"] = stage / "cycle.png"
        cycle_figure(result.prediction, result.forces_N, result.plan, files["cycle_png"],
                     title=f"{result.twin.patient.get('id', '')} {result.plan.exercise}: verified profile "
                           f"(trial {result.chosen.number})")
        files["history_png"] = stage / "history.png"
        history_figure(result.search, result.plan, files["history_png"])
        files["pareto_png"] = stage / "pareto.png"
        pareto_figure(result.search, result.plan, result.chosen, files["pareto_png"])
        files["report"] = stage / "report.md"
        write_text_atomic(files["report"], report_markdown(result))
        # A trajectory left by an earlier plan in this folder would sit beside the new profile
        # unverified: a ROS 2 controller would play the old forces.
        if "ros2" not in files:
            (out_dir / ROS2_FILE).unlink(missing_ok=True)
    return {key: out_dir / path.name for key, path in files.items()}


def history_csv(search) -> str:
    buffer = io.StringIO()
    keys = sorted({k for c in search.candidates for k in c.constraints})
    params = list(search.candidates[0].profile.parameters) if search.candidates else []
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["trial", "rms_target_error", "peak_compression_N", "feasible", *params,
                     *(f"constraint.{k}" for k in keys)])
    for c in sorted(search.candidates, key=lambda c: c.number):
        writer.writerow([c.number, f"{c.error:.6g}", f"{c.peak_compression_N:.1f}", int(c.feasible),
                         *(f"{v:.4f}" for v in c.profile.parameters.values()),
                         *(f"{c.constraints.get(k, float('nan')):.4f}" for k in keys)])
    return buffer.getvalue()


def target_table(mean_activation: dict, targets) -> list[tuple[str, float, float, float, bool]]:
    """(target label, target, left mean, right mean, on target for every side it names)."""
    rows = []
    for t in targets:
        means = mean_activation[t.label]
        ok = all(abs(means[side] - t.value) <= ON_TARGET for side in t.sides)
        rows.append((t.label, t.value, means["left"], means["right"], ok))
    return rows


def uncertainty_lines(result) -> list[str]:
    """The measurement band the limits were held for, and the worst case over it."""
    plan = result.plan
    if getattr(plan, "uncertainty", "morphometry") == "none":
        return ["", "## Measurement uncertainty", "",
                "**Not carried** (`--uncertainty none`): the limits were held for the morphometry's point estimate "
                "only. A research comparison; `lumbar-twin check` refuses this profile for a device."]
    from planning.export import uncertainty_section

    section = uncertainty_section(result)
    worst, v = section["worst_case_peak"], result.verification
    lines = ["", "## Measurement uncertainty (weakest and strongest plausible patient)", "",
             f"Morphometry band by method ({section['methods']}), data/morphometry_uncertainty.yaml; "
             "every limit was a constraint of the search and was verified in both engines and by OpenSim's "
             "StaticOptimization + JointReaction for each patient below.", "",
             "| patient | muscle force vs measured | peak compression N (level) | peak AP shear N (level) "
             "| capped fascicles | OpenSim |",
             "| --- | --- | ---: | ---: | --- | :---: |"]
    rows = [("point estimate", None, v.search_evaluation, result.independent)]
    rows += [(label, section["muscle_force_ratio"][label], v.band[label][1], result.independent_band.get(label))
             for label in v.band]
    for label, ratios, evaluation, independent in rows:
        peaks = evaluation.peaks()
        comp = max(peaks["compression_N"], key=peaks["compression_N"].get)
        shear = max(peaks["ap_shear_N"], key=peaks["ap_shear_N"].get)
        force = "1" if ratios is None else ", ".join(
            f"{g} {lo:.2f}-{hi:.2f}" for g, (lo, hi) in ratios.items() if (lo, hi) != (1.0, 1.0))
        caps = ", ".join(f"{g} {peaks['fascicle_activation'][g]:.3f} (cap {c:g})"
                         for g, c in plan.limits.activation.items()) or "-"
        lines.append(f"| {label} | {force} | {peaks['compression_N'][comp]:.0f} ({comp}) | "
                     f"{peaks['ap_shear_N'][shear]:.0f} ({shear}) | {caps} | "
                     f"{'passed' if independent and independent.passed else 'not run'} |")
    comp = max(worst["compression_N"], key=lambda lv: worst["compression_N"][lv] / plan.limits.compression_N[lv])
    lines += ["", f"Worst case over the three patients, both engines and OpenSim: compression "
                  f"{worst['compression_N'][comp]:.0f} N at {comp} (limit {plan.limits.compression_N[comp]:.0f} N), "
                  f"reserve share {worst['reserve_share']:.1%}."]
    return lines


def template_target_lines(result) -> list[str]:
    """Which targeted groups rest, at some level and side, on the template or on an estimate
    rather than on a measured row (twin.json's morphometry_use); nothing when all were measured."""
    uses = getattr(result.twin, "morphometry_use", None) or []
    lines = []
    for target in result.plan.targets:
        for kind in ("template", "estimated", "accepted_qc_fail"):
            rows = [f"{u['side']} {u['level']}" for u in uses
                    if u["muscle"] == target.group and u["side"] in target.sides and u["use"] == kind]
            if rows:
                what = {"template": "not measured: the template's", "estimated": "estimated from a merged class",
                        "accepted_qc_fail": "measured but failed imaging QC (accepted)"}[kind]
                lines.append(f"- {target.label} rests on rows {what} at {', '.join(rows)}.")
    accepted = [f"{u['muscle']} {u['side']} {u['level']}" for u in uses if u["use"] == "accepted_qc_fail"]
    if accepted:  # whatever the targets: the whole twin rests on them
        lines.append(f"- The twin uses rows that failed imaging QC, accepted at build: {', '.join(accepted)}.")
    return ["", "The targets' muscles on MRI (twin.json, morphometry_use):", "", *lines] if lines else []


def report_markdown(result) -> str:
    plan, v = result.plan, result.verification
    predicted, verified = result.prediction.peaks(), v.peak
    lines = [
        f"# Force profile: {result.twin.patient.get('id', 'twin')}, {plan.exercise}",
        "",
        f"Contact `{plan.contact}`, device rate {plan.device.rate_hz:g} Hz, cycle {result.exercise.cycle_s:g} s "
        f"({len(result.times_s)} samples). Chosen: trial {result.chosen.number} of {len(result.search.candidates)} "
        f"({sum(c.feasible for c in result.search.candidates)} feasible). Search engine "
        f"{result.provenance['search_engine']}, verified in {v.engine}: "
        f"**{'passed' if v.passed else 'FAILED'}**.",
        "",
        "## Targets (mean activation over the target's phase window)",
        "",
        "| target | value | left | right | within 0.02 |",
        "| --- | ---: | ---: | ---: | :---: |",
    ]
    for label, value, left, right, ok in target_table(result.mean_activation(), plan.targets):
        lines.append(f"| {label} | {value:.3f} | {left:.3f} | {right:.3f} | {'yes' if ok else 'no'} |")
    lines += template_target_lines(result)
    lines += [
        "",
        f"RMS target error over every frame: {result.rms_target_error():.4f}.",
        "",
        f"## Peak spinal loads (limits; the search kept {plan.search.margin:.0%} below them)",
        "",
        f"| level | compression limit N | {result.provenance['search_engine']} | {v.engine} "
        f"| AP shear limit N | {result.provenance['search_engine']} | {v.engine} |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for level in LEVELS:
        lines.append(f"| {level} | {plan.limits.compression_N[level]:.0f} | {predicted['compression_N'][level]:.0f} | "
                     f"{verified['compression_N'][level]:.0f} | {plan.limits.ap_shear_N[level]:.0f} | "
                     f"{predicted['ap_shear_N'][level]:.0f} | {verified['ap_shear_N'][level]:.0f} |")
    diff = v.max_engine_difference
    lines += [
        "",
        f"Model consistency (the same statics with each engine's kinematics, every sample): the engines "
        f"differ by at most compression {diff['compression_N']:.2g} N, AP shear {diff['ap_shear_N']:.2g} N, "
        f"group activation {diff['activation']:.2g}.",
    ]
    ind = result.independent
    if ind is not None:
        d = ind.max_difference
        lines += [
            "",
            f"Independent verification: OpenSim's own StaticOptimization and JointReaction on `model.osim` "
            f"re-solved {len(ind.frames)} samples (24 over the cycle and every sample where the prediction "
            f"peaks) in {ind.seconds:.1f} s: **{'passed' if ind.passed else 'FAILED'}**. Largest difference "
            f"from the prediction: compression {d['compression_N']:.2g} N ({d['compression_relative']:.2%}; "
            f"allowed 1 %), targeted activation {d['targeted_activation']:.2g} (allowed 0.005).",
        ]
    lines += [
        "",
        "## Peak activations (group mean and most active fascicle; a cap bounds every fascicle)",
        "",
        f"| group | cap | group mean, {result.provenance['search_engine']} | fascicle, "
        f"{result.provenance['search_engine']} | group mean, {v.engine} | fascicle, {v.engine} |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for group in predicted["activation"]:
        cap = plan.limits.activation.get(group)
        lines.append(f"| {group} | {'' if cap is None else f'{cap:g}'} | {predicted['activation'][group]:.3f} | "
                     f"{predicted['fascicle_activation'][group]:.3f} | {verified['activation'][group]:.3f} | "
                     f"{verified['fascicle_activation'][group]:.3f} |")
    lines += uncertainty_lines(result)
    lines += [
        "",
        "## Pictures",
        "",
        "![cycle](cycle.png)",
        "",
        "![history](history.png)",
        "",
        "![pareto](pareto.png)",
        "",
        "Files: `profile.csv` and `profile.json` (check them with `lumbar-twin check profile.json`), "
        "`plan.json` (the resolved plan), `history.csv` (every trial).",
        "",
    ]
    return "\n".join(lines)

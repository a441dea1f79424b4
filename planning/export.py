"""Device files: a verified profile as CSV plus a JSON that carries its own proof, and `check`.

profile.csv   time_s,fx_N,fy_N,fz_N: one row per device sample over one cycle (it repeats),
              in the contact body's frame
profile.json  schema lumbar-twin/device-profile@1: the CSV's sha256, rate, frame, units, device
              limits, spinal limits, targets, predicted peaks and activations, the verification
              and its engine, the parameters and the provenance
profile.ros2.yaml  (format ros2) the same samples as a trajectory_msgs/JointTrajectory with one
              effort "joint" per force component
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import yaml

from lumbar_twin.errors import InputError, LumbarTwinError
from lumbar_twin.fileio import read_json, sha256_bytes, write_bytes_atomic, write_json_atomic, write_text_atomic
from planning.profile import Device, check_samples
from twin.spec import LEVELS

SCHEMA = "lumbar-twin/device-profile@1"
CSV_HEADER = ("time_s", "fx_N", "fy_N", "fz_N")
#: Forces are written to 1e-6 N, which moves a rate of change by at most 2e-6 N x rate_hz;
#: `check` allows a relative 1e-4 on every device limit (0.03 N/s on 300 N/s).
CHECK_TOLERANCE = 1e-4
FRAME = "{body} body frame at the {contact} pad (x anterior, y superior, z right); it turns with the trunk"


def non_finite_fields(value, where: str = "") -> list[str]:
    """Dotted paths of every NaN or infinite number in a JSON-like document."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in non_finite_fields(v, f"{where}.{k}" if where else str(k))]
    if isinstance(value, (list, tuple)):
        return [p for k, v in enumerate(value) for p in non_finite_fields(v, f"{where}[{k}]")]
    if isinstance(value, float) and not np.isfinite(value):
        return [where or "value"]
    return []


def plan_uncertainty(result) -> str:
    return getattr(result.plan, "uncertainty", "morphometry")


def uncertainty_section(result) -> dict:
    """profile.json's record of the measurement band the limits were held for."""
    mode = plan_uncertainty(result)
    if mode == "none":
        return {"mode": "none", "note": "planned and verified for the point estimate of the morphometry only "
                                        "(research comparison): not for a device"}
    spec = result.twin.spec
    plausible = result.twin.plausible_specs()
    groups = list(dict.fromkeys(f.group for f in spec.fascicles))
    band = {}
    for label, other in plausible.items():
        ratios = {}
        for group in groups:
            r = [o.max_isometric_force_N / f.max_isometric_force_N
                 for f, o in zip(spec.fascicles, other.fascicles) if f.group == group]
            ratios[group] = [round(min(r), 4), round(max(r), 4)]
        band[label] = ratios
    return {
        "mode": "morphometry",
        "methods": result.twin.uncertainty.get("methods"),
        "muscle_force_ratio": band,
        "worst_case_peak": result.worst_case_peak(),
        "patients": {label: {"peak": result.verification.band[label][0].peaks(),
                             "search_engine_peak": result.verification.band[label][1].peaks(),
                             "independent_verification": result.independent_band[label].to_dict()}
                     for label in plausible},
        "source": "twin.json uncertainty (imaging/uncertainty.py, data/morphometry_uncertainty.yaml)",
    }


def profile_csv(times_s: np.ndarray, forces_N: np.ndarray) -> bytes:
    buffer = io.StringIO()
    buffer.write(",".join(CSV_HEADER) + "\n")
    for t, (fx, fy, fz) in zip(times_s, forces_N):
        buffer.write(f"{t:.6f},{fx:.6f},{fy:.6f},{fz:.6f}\n")
    return buffer.getvalue().encode()


def profile_document(result, csv_bytes: bytes) -> dict:
    """profile.json for a PlanResult that passed verification (refuses any other)."""
    if not result.verification.passed:
        raise LumbarTwinError("refusing to export a profile that did not pass verification")
    if not (np.isfinite(result.times_s).all() and np.isfinite(result.forces_N).all()):
        raise LumbarTwinError("refusing to export: a sample is not a finite number (NaN or inf)")
    if result.independent is None or not result.independent.passed:
        raise LumbarTwinError("refusing to export a profile that OpenSim's own StaticOptimization and "
                              "JointReaction did not verify")
    if plan_uncertainty(result) == "morphometry" and (
            set(result.independent_band) != set(result.verification.band) or not result.verification.band
            or not all(v.passed for v in result.independent_band.values())):
        raise LumbarTwinError("refusing to export a profile not verified for the weakest and strongest plausible "
                              "patient (the morphometry's measurement band)")
    plan, chosen, spec = result.plan, result.chosen, result.twin.spec
    contact = spec.contact(plan.contact)
    push = [float(v) for v in contact.push_direction]
    document = {
        "schema": SCHEMA,
        "csv": "profile.csv",
        "sha256": sha256_bytes(csv_bytes),
        "rate_hz": plan.device.rate_hz,
        "samples": len(result.times_s),
        "cycle_s": result.exercise.cycle_s,
        "exercise": plan.exercise,
        "frame": FRAME.format(body=contact.body, contact=contact.name),
        "contact": contact.name,
        "units": {"time": "s", "force": "N"},
        "device": {"max_force_N": plan.device.max_force_N, "max_rate_N_per_s": plan.device.max_rate_N_per_s,
                   "cone_deg": plan.device.cone_deg, "push_direction": push},
        "limits": {"compression_N": plan.limits.compression_N, "ap_shear_N": plan.limits.ap_shear_N,
                   "activation": plan.limits.activation, "reserve_share": plan.limits.reserve_share,
                   "search_margin": plan.search.margin},
        "activation_caps": "bound every fascicle of the group; peak.activation is the force-weighted group mean "
                           "(each side), peak.fascicle_activation the most active fascicle of the group",
        "targets": {t.label: t.value for t in plan.targets},
        "target_phases": {t.label: list(t.phase) for t in plan.targets},
        "predicted": {"engine": result.provenance["search_engine"], "peak": result.prediction.peaks(),
                      "mean_activation": result.mean_activation(), "rms_target_error": result.rms_target_error()},
        "verification": result.verification.to_dict(),
        "independent_verification": result.independent.to_dict(),
        "uncertainty": uncertainty_section(result),
        "parameters": [float(k) for k in chosen.profile.knots_N],
        "direction": {"tilt_deg": float(chosen.profile.tilt_deg), "azimuth_deg": float(chosen.profile.azimuth_deg),
                      "unit_vector": [float(v) for v in chosen.profile.direction(push)]},
        "provenance": result.provenance,
    }
    bad = non_finite_fields(document)
    if bad:
        raise LumbarTwinError(f"refusing to export: non-finite values in profile.json ({', '.join(bad[:5])})")
    return document


def ros2_yaml(times_s: np.ndarray, forces_N: np.ndarray, contact: str) -> str:
    points = []
    for t, force in zip(times_s, forces_N):
        sec = int(np.floor(t))
        points.append({"positions": [], "velocities": [], "accelerations": [],
                       "effort": [round(float(f), 6) for f in force],
                       "time_from_start": {"sec": sec, "nanosec": int(round((t - sec) * 1e9))}})
    doc = {"header": {"frame_id": contact},
           "joint_names": [f"{contact}_fx", f"{contact}_fy", f"{contact}_fz"], "points": points}
    return ("# trajectory_msgs/msg/JointTrajectory: effort = force at the pad [N], one cycle "
            "(lumbar-twin; profile.json holds its verification)\n" + yaml.safe_dump(doc, sort_keys=False))


def ros2_from_profile(path: str | Path) -> str:
    """profile.ros2.yaml's text for a written profile.json: its CSV's samples (checksum checked)
    as ros2_yaml writes them at plan time. The caller decides whether the profile may be exported
    (check_profile); this only converts."""
    doc, times, forces = read_profile(path)
    if not isinstance(doc.get("contact"), str):
        raise InputError(path, "incomplete device profile (missing 'contact')")
    return ros2_yaml(times, forces, doc["contact"])


def read_profile(path: str | Path) -> tuple[dict, np.ndarray, np.ndarray]:
    """profile.json and its CSV (checksum checked): (document, times_s, forces_N)."""
    path = Path(path)
    doc = read_json(path)
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise InputError(path, f"not a device profile (schema {doc.get('schema') if isinstance(doc, dict) else None!r}, "
                               f"expected {SCHEMA})")
    csv_path = path.parent / str(doc.get("csv", ""))
    try:
        data = csv_path.read_bytes()
    except OSError as exc:
        raise InputError(csv_path, f"cannot read the profile's CSV ({exc.strerror})") from None
    if sha256_bytes(data) != doc.get("sha256"):
        raise InputError(csv_path, "checksum does not match profile.json: the CSV was changed or damaged")
    rows = list(csv.reader(io.StringIO(data.decode())))
    if not rows or tuple(rows[0]) != CSV_HEADER:
        raise InputError(csv_path, f"header must be {','.join(CSV_HEADER)}")
    try:
        values = np.array([[float(v) for v in row] for row in rows[1:]], float).reshape(-1, 4)
    except ValueError as exc:
        raise InputError(csv_path, f"a value is not a number ({exc})") from None
    return doc, values[:, 0], values[:, 1:]


def check_profile(path: str | Path) -> list[str]:
    """Every reason a profile may not go to a device (empty when it may). Unreadable -> InputError."""
    doc, times, forces = read_profile(path)
    problems = []
    try:
        device = Device(doc["device"]["max_force_N"], doc["device"]["max_rate_N_per_s"],
                        doc["device"]["cone_deg"], doc["rate_hz"])
        push = doc["device"]["push_direction"]
        limits, verification = doc["limits"], doc["verification"]
    except (KeyError, TypeError) as exc:
        raise InputError(path, f"incomplete device profile (missing {exc})") from None
    if len(times) != doc.get("samples"):
        problems.append(f"{len(times)} rows, but profile.json records {doc.get('samples')} samples")
    if len(times) and np.isfinite(times).all() and (np.abs(times - np.arange(len(times)) / device.rate_hz).max() > 1e-6):
        problems.append(f"rows are not at {device.rate_hz:g} Hz from t = 0")
    problems += [f"profile.json field {field} is not a finite number" for field in non_finite_fields(doc)]
    if not np.isfinite(times).all():
        problems.append("a time in the CSV is not a finite number")
    problems += check_samples(forces, device, push, tolerance=CHECK_TOLERANCE)
    if verification.get("passed") is not True:
        problems.append("the recorded verification did not pass")
    independent = doc.get("independent_verification")
    if not isinstance(independent, dict):
        problems.append("no independent verification (OpenSim StaticOptimization + JointReaction) is recorded")
    else:
        if independent.get("passed") is not True:
            problems.append("the recorded independent verification (OpenSim) did not pass")
        problems += [f"independent verification: {p}" for p in _peak_problems(independent.get("peak") or {}, limits)]
    problems += _peak_problems(verification.get("peak") or {}, limits)
    uncertainty = doc.get("uncertainty")
    if not isinstance(uncertainty, dict) or uncertainty.get("mode") not in ("morphometry", "none"):
        problems.append("no record of the measurement uncertainty the limits were held for")
    elif uncertainty["mode"] == "none":
        problems.append("planned for the morphometry's point estimate only (--uncertainty none): a research "
                        "comparison, not for a device")
    else:
        problems += [f"worst case: {p}" for p in _peak_problems(uncertainty.get("worst_case_peak") or {}, limits)]
        patients = uncertainty.get("patients") or {}
        for label in ("weakest plausible", "strongest plausible"):
            entry = (patients.get(label) or {}).get("independent_verification")
            if not isinstance(entry, dict) or entry.get("passed") is not True:
                problems.append(f"the {label} patient's independent verification is missing or did not pass")
    return problems


def _peak_problems(peak: dict, limits: dict) -> list[str]:
    """Each recorded peak that is missing or above its limit."""
    problems = []
    for kind in ("compression_N", "ap_shear_N"):
        for level in LEVELS:
            value, cap = (peak.get(kind) or {}).get(level), (limits.get(kind) or {}).get(level)
            if value is None or cap is None:
                problems.append(f"verification records no {kind} at {level}")
            elif value > cap:
                problems.append(f"verified {kind} at {level} ({value:.0f}) exceeds its limit {cap:.0f}")
    for group, cap in (limits.get("activation") or {}).items():  # a cap bounds every fascicle of the group
        value = (peak.get("fascicle_activation") or {}).get(group)
        if value is None:
            problems.append(f"verification records no peak fascicle activation of {group} (capped at {cap})")
        elif value > cap:
            problems.append(f"verified peak {group} fascicle activation {value:.3f} exceeds its cap {cap}")
    return problems


def write_profile_files(stage: Path, result, formats: tuple[str, ...] = ()) -> dict[str, Path]:
    """profile.csv, profile.json (and profile.ros2.yaml) into a staging folder."""
    data = profile_csv(result.times_s, result.forces_N)
    document = profile_document(result, data)
    files = {"csv": stage / "profile.csv", "json": stage / "profile.json"}
    write_bytes_atomic(files["csv"], data)
    write_json_atomic(files["json"], document)
    if "ros2" in formats:
        files["ros2"] = stage / "profile.ros2.yaml"
        write_text_atomic(files["ros2"], ros2_yaml(result.times_s, result.forces_N, result.plan.contact))
    return files

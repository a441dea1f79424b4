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
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import yaml

from lumbar_twin.errors import InputError, LumbarTwinError
from lumbar_twin.fileio import read_json, sha256_bytes, sha256_file, write_bytes_atomic, write_json_atomic
from planning.profile import Device, Profile, check_samples
from twin.simulate import MODEL_FILES
from twin.spec import LEVELS

SCHEMA = "lumbar-twin/device-profile@1"
CSV_HEADER = ("time_s", "fx_N", "fy_N", "fz_N")
ROS2_FILE = "profile.ros2.yaml"
UNITS = {"time": "s", "force": "N"}
#: The CSV holds the verified parameters' samples rounded to 1e-6 N (at most 5e-7 N off each).
SAMPLE_TOLERANCE_N = 2e-6
#: What OpenSim's independent verification must have shown (issue 14; planning/opensim_verify.py
#: COMPRESSION_TOLERANCE, ACTIVATION_TOLERANCE, UNIFORM_FRAMES, BAND_UNIFORM_FRAMES; a test keeps them equal).
COMPRESSION_TOLERANCE, ACTIVATION_TOLERANCE = 0.01, 0.005
UNIFORM_FRAMES_REQUIRED, BAND_FRAMES_REQUIRED = 24, 6
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


def profile_document(result, csv_bytes: bytes, ros2_bytes: bytes | None = None) -> dict:
    """profile.json for a PlanResult that passed verification (refuses any other).

    `ros2_bytes`: profile.ros2.yaml when it is written; its sha256 is recorded so `check` can
    tell whether the trajectory a ROS 2 controller plays is the verified one."""
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
    _, expected = chosen.profile.samples(plan.device, push)  # what verification checked, and `check` rebuilds
    if expected.shape != np.shape(result.forces_N) or np.abs(expected - result.forces_N).max() > 1e-9:
        raise LumbarTwinError("refusing to export: the samples are not those of the verified parameters")
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
        "units": dict(UNITS),
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
        "provenance": {**result.provenance, "model_sha256": model_sha256(result.twin.directory)},
        # The resolved plan (it hashes to provenance.plan_sha256): `check` holds the limits, device,
        # targets and uncertainty recorded above to it, so an edit of one of them shows.
        "plan": result.plan.to_dict(),
    }
    if ros2_bytes is not None:
        document["ros2"] = {"file": ROS2_FILE, "sha256": sha256_bytes(ros2_bytes)}
    bad = non_finite_fields(document)
    if bad:
        raise LumbarTwinError(f"refusing to export: non-finite values in profile.json ({', '.join(bad[:5])})")
    return document


def model_sha256(twin_dir) -> dict[str, str | None]:
    """sha256 of the twin's model files: model.osim is what OpenSim's independent verification
    read, model.xml what a MuJoCo user will load (`check --twin` compares both)."""
    return {name: sha256_file(Path(twin_dir) / name) if (Path(twin_dir) / name).is_file() else None
            for name in MODEL_FILES}


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
    csv_path = path.parent / _sibling(path, doc.get("csv"), "csv")
    data = _recorded_bytes(csv_path, doc.get("sha256"), "CSV")
    rows = list(csv.reader(io.StringIO(data.decode(errors="replace"))))
    if not rows or tuple(rows[0]) != CSV_HEADER:
        raise InputError(csv_path, f"header must be {','.join(CSV_HEADER)}")
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(CSV_HEADER):
            raise InputError(csv_path, f"line {number} has {len(row)} fields, expected {len(CSV_HEADER)}")
    try:
        values = np.array([[float(v) for v in row] for row in rows[1:]], float).reshape(-1, 4)
    except ValueError as exc:
        raise InputError(csv_path, f"a value is not a number ({exc})") from None
    return doc, values[:, 0], values[:, 1:]


def _recorded_bytes(path: Path, sha256: str | None, what: str) -> bytes:
    """A file beside profile.json whose sha256 profile.json records (InputError if unreadable or changed)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot read the profile's {what} ({exc.strerror})") from None
    if sha256_bytes(data) != sha256:
        raise InputError(path, f"checksum does not match profile.json: the {what} was changed or damaged")
    return data


def _sibling(path: Path, name, field: str) -> str:
    """A file name recorded in profile.json: it must be a plain name beside profile.json."""
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise InputError(path, f"must name a file beside profile.json, not {name!r}", field=field)
    return name


def _real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _device_record(path: Path, doc: dict) -> tuple[Device, np.ndarray]:
    """The recorded device and push direction, checked for type (a malformed one is an InputError)."""
    try:
        record = doc["device"]
        values = [record["max_force_N"], record["max_rate_N_per_s"], record["cone_deg"], doc["rate_hz"]]
        push = record["push_direction"]
    except (KeyError, TypeError) as exc:
        raise InputError(path, f"incomplete device profile (missing {exc})") from None
    if not all(_real(v) for v in values):
        raise InputError(path, "the device limits and rate must be numbers", field="device")
    if not (isinstance(push, list) and len(push) == 3 and all(_real(v) for v in push)
            and np.isfinite(push).all() and np.linalg.norm(push) > 0):
        raise InputError(path, f"must be three finite numbers, not all zero (got {push!r})",
                         field="device.push_direction")
    try:
        device = Device(*(float(v) for v in values))
    except InputError as exc:
        raise InputError(path, exc.problem, field=exc.field) from None
    return device, np.asarray(push, float)


def check_profile(path: str | Path, twin=None) -> list[str]:
    """Every reason a profile may not go to a device (empty when it may). Unreadable -> InputError.

    Without a twin, `check` can only hold the files to themselves: the CSV must be exactly the
    samples of the recorded (verified) parameters, every recorded claim consistent and within its
    limits. `twin` (a LoadedTwin) adds what needs the patient: the profile must be this twin's
    (twin.json's and model.osim's sha256) and MuJoCo's statics at every sample, for the point
    estimate and the plausible patients, must keep every recorded limit.
    """
    path = Path(path)
    doc, times, forces = read_profile(path)
    device, push = _device_record(path, doc)
    limits, verification = doc.get("limits"), doc.get("verification")
    if not isinstance(limits, dict) or not isinstance(verification, dict):
        raise InputError(path, "incomplete device profile (limits and verification must be records)")
    problems = []
    problems += [f"profile.json field {field} is not a finite number" for field in non_finite_fields(doc)]
    if doc.get("units") != UNITS:
        problems.append(f"units must be {UNITS} (the device reads seconds and newtons), not {doc.get('units')!r}")
    frame, contact = doc.get("frame"), doc.get("contact")
    body = frame.split(" body frame at the ")[0] if isinstance(frame, str) else None
    if not isinstance(contact, str) or frame != FRAME.format(body=body, contact=contact):
        problems.append(f"the force frame must be {FRAME.format(body='<body>', contact=contact)!r}, not {frame!r}")
    if len(times) != doc.get("samples"):
        problems.append(f"{len(times)} rows, but profile.json records {doc.get('samples')} samples")
    if len(times) and np.isfinite(times).all() and (np.abs(times - np.arange(len(times)) / device.rate_hz).max() > 1e-6):
        problems.append(f"rows are not at {device.rate_hz:g} Hz from t = 0")
    if not np.isfinite(times).all():
        problems.append("a time in the CSV is not a finite number")
    problems += check_samples(forces, device, push, tolerance=CHECK_TOLERANCE)
    problems += _parameter_problems(path, doc, device, push, forces)
    for name, record in (("verification", verification), ("independent verification (OpenSim)",
                                                           doc.get("independent_verification"))):
        if not isinstance(record, dict):
            problems.append(f"no {name} is recorded")
        elif record.get("passed") is not True:
            problems.append(f"the recorded {name} did not pass")
        elif record.get("problems"):  # "passed" with problems listed is a contradiction: trust the problems
            problems.append(f"the recorded {name} claims it passed but lists problems: {record['problems'][0]}")
    independent = doc.get("independent_verification")
    if isinstance(independent, dict):
        problems += [f"independent verification: {p}" for p in _peak_problems(independent.get("peak") or {}, limits)]
        problems += _agreement_problems(independent, "independent verification", UNIFORM_FRAMES_REQUIRED)
    problems += _peak_problems(verification.get("peak") or {}, limits)
    problems += [f"search engine: {p}" for p in _peak_problems(verification.get("search_engine_peak") or {}, limits)]
    uncertainty = doc.get("uncertainty")
    recorded_mode = (doc.get("provenance") or {}).get("uncertainty") if isinstance(doc.get("provenance"), dict) else None
    if not isinstance(uncertainty, dict) or uncertainty.get("mode") not in ("morphometry", "none"):
        problems.append("no record of the measurement uncertainty the limits were held for")
    elif uncertainty["mode"] != recorded_mode:
        problems.append(f"the uncertainty section says {uncertainty['mode']!r} but the provenance records "
                        f"{recorded_mode!r}: the profile was edited")
    elif uncertainty["mode"] == "none":
        problems.append("planned for the morphometry's point estimate only (--uncertainty none): a research "
                        "comparison, not for a device")
    else:
        problems += [f"worst case: {p}" for p in _peak_problems(uncertainty.get("worst_case_peak") or {}, limits)]
        patients = uncertainty.get("patients") if isinstance(uncertainty.get("patients"), dict) else {}
        for label in ("weakest plausible", "strongest plausible"):
            entry = patients.get(label) if isinstance(patients.get(label), dict) else {}
            ind = entry.get("independent_verification")
            if not isinstance(ind, dict) or ind.get("passed") is not True or ind.get("problems"):
                problems.append(f"the {label} patient's independent verification is missing or did not pass")
            for key in ("peak", "search_engine_peak"):
                problems += [f"{label} patient: {p}" for p in _peak_problems(entry.get(key) or {}, limits)]
            if isinstance(ind, dict):
                problems += _agreement_problems(ind, f"the {label} patient's independent verification",
                                                BAND_FRAMES_REQUIRED)
    problems += _plan_problems(doc)
    problems += _ros2_problems(path, doc, times, forces)
    if twin is not None:
        problems += _twin_problems(path, doc, twin, forces)
    return problems


def _parameter_problems(path: Path, doc: dict, device: Device, push: np.ndarray, forces: np.ndarray) -> list[str]:
    """The CSV must be the recorded parameters' samples: what verification checked is what plays."""
    try:
        direction = doc["direction"]
        knots = tuple(float(k) for k in doc["parameters"] if _real(k))
        if len(knots) != len(doc["parameters"]) or not 1 <= len(knots) <= 12:
            raise TypeError("parameters: 1..12 knot forces")
        cycle_s, tilt, azimuth = doc["cycle_s"], direction["tilt_deg"], direction["azimuth_deg"]
        if not (_real(cycle_s) and _real(tilt) and _real(azimuth)):
            raise TypeError("cycle_s and direction must be numbers")
    except (KeyError, TypeError) as exc:
        raise InputError(path, f"incomplete device profile (the verified parameters: {exc})") from None
    if not (np.isfinite([cycle_s, tilt, azimuth]).all() and np.isfinite(knots).all() and cycle_s > 0):
        return ["the recorded parameters or cycle are not finite numbers"]
    n = max(1, round(cycle_s * device.rate_hz))
    if n != len(forces):
        return [f"{len(forces)} rows, but a {cycle_s:g} s cycle at {device.rate_hz:g} Hz has {n} samples"]
    profile = Profile(str(doc.get("contact")), float(cycle_s), knots, float(tilt), float(azimuth))
    _, expected = profile.samples(device, push)
    off = np.abs(expected - forces).max(axis=1) if len(forces) else np.zeros(0)
    if not np.isfinite(forces).all() or (off > SAMPLE_TOLERANCE_N).any():
        k = int(np.argmax(np.where(np.isfinite(off), off, np.inf)))
        return [f"the samples are not those of the verified parameters (sample {k + 1} is {off[k]:.3g} N off): "
                f"the CSV or the recorded parameters, device or cycle were changed"]
    return []


def plan_record_sha256(record: dict) -> str:
    """planning.plan.Plan.sha256 of a plan record read back from JSON (the trial budget excluded)."""
    doc = {**record, "search": {k: v for k, v in record["search"].items() if k != "trials"}}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _plan_problems(doc: dict) -> list[str]:
    """Each recorded limit, device value, target or mode that is not what was planned and verified."""
    record = doc.get("plan")
    provenance = doc.get("provenance") if isinstance(doc.get("provenance"), dict) else {}
    try:
        if plan_record_sha256(record) != provenance.get("plan_sha256"):
            return ["the recorded plan does not hash to provenance.plan_sha256: profile.json was edited"]
        limits, device = record["limits"], record["device"]
        planned = {
            "exercise": record["exercise"], "contact": record["contact"],
            "limits": {"compression_N": limits["compression_N"], "ap_shear_N": limits["ap_shear_N"],
                       "activation": limits["activation"], "reserve_share": limits["reserve_share"],
                       "search_margin": record["search"]["margin"]},
            "device": {k: device[k] for k in ("max_force_N", "max_rate_N_per_s", "cone_deg")},
            "rate_hz": device["rate_hz"],
            "targets": {(t["group"] if t["side"] == "both" else f"{t['group']}.{t['side']}"): t["value"]
                        for t in record["targets"]},
            "target_phases": {(t["group"] if t["side"] == "both" else f"{t['group']}.{t['side']}"): list(t["phase"])
                              for t in record["targets"]},
            "uncertainty": record["uncertainty"],
        }
    except (KeyError, TypeError, AttributeError):
        return ["no complete record of the resolved plan (plan) that the limits, device and targets were verified "
                "for"]
    recorded = {key: doc.get(key) for key in planned}
    recorded["device"] = {k: v for k, v in (doc.get("device") or {}).items() if k != "push_direction"} \
        if isinstance(doc.get("device"), dict) else None
    recorded["uncertainty"] = (doc.get("uncertainty") or {}).get("mode") if isinstance(doc.get("uncertainty"), dict) \
        else None
    return [f"profile.json's {key} is not what was planned and verified (plan_sha256): it was edited"
            for key in planned if recorded[key] != planned[key]]


def _ros2_problems(path: Path, doc: dict, times: np.ndarray, forces: np.ndarray) -> list[str]:
    """profile.ros2.yaml, where there is one, must hold the CSV's samples and be the recorded file."""
    record = doc.get("ros2")
    beside = path.parent / ROS2_FILE
    if record is None:
        return [f"{ROS2_FILE} lies beside profile.json but is not recorded in it (no checksum): it may not be "
                "the verified profile"] if beside.exists() else []
    if not isinstance(record, dict):
        raise InputError(path, "must be a record with file and sha256", field="ros2")
    ros_path = path.parent / _sibling(path, record.get("file"), "ros2.file")
    if not ros_path.exists():  # the CSV alone may go to a device that does not read ROS 2
        return []
    data = _recorded_bytes(ros_path, record.get("sha256"), "ROS 2 trajectory")
    try:
        ros = yaml.safe_load(data)
        points = ros["points"]
        ros_times = np.array([p["time_from_start"]["sec"] + p["time_from_start"]["nanosec"] * 1e-9 for p in points])
        efforts = np.array([[float(v) for v in p["effort"]] for p in points], float).reshape(-1, 3)
        names, frame = ros["joint_names"], ros["header"]["frame_id"]
    except (yaml.YAMLError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise InputError(ros_path, f"not a JointTrajectory of efforts ({type(exc).__name__}: {exc})") from None
    contact = doc.get("contact")
    if frame != contact or names != [f"{contact}_{a}" for a in ("fx", "fy", "fz")]:
        return [f"{ROS2_FILE} is for {frame!r} ({names}), not the profile's contact {contact!r}"]
    if len(points) != len(times) or np.abs(ros_times - times).max(initial=0.0) > 1e-6 \
            or not np.isfinite(efforts).all() or np.abs(efforts - forces).max(initial=0.0) > SAMPLE_TOLERANCE_N:
        return [f"{ROS2_FILE} does not hold the same samples as the CSV"]
    return []


def _twin_problems(path: Path, doc: dict, twin, forces: np.ndarray) -> list[str]:
    """The profile against the twin it is meant for: identity, pad, and MuJoCo at every sample."""
    from planning.evaluate import Evaluator, precompute
    from planning.exercise import load_exercise
    from planning.plan import resolve_plan
    from planning.profile import sample_times
    from planning.verify import limit_breaches

    provenance = doc.get("provenance") if isinstance(doc.get("provenance"), dict) else {}
    problems = []
    twin_sha = sha256_file(Path(twin.directory) / "twin.json")
    if provenance.get("twin_sha256") != twin_sha:
        problems.append(f"planned for another twin (twin.json sha256 {str(provenance.get('twin_sha256'))[:12]}, "
                        f"this twin's {twin_sha[:12]})")
    recorded = provenance.get("model_sha256") if isinstance(provenance.get("model_sha256"), dict) else {}
    for name, sha in model_sha256(twin.directory).items():
        if recorded.get(name) != sha:
            problems.append(f"{name} is not the one the profile was verified with (sha256 "
                            f"{str(recorded.get(name))[:12]}, the twin folder's {str(sha)[:12]})")
    contact = next((c for c in twin.spec.contacts if c.name == doc.get("contact")), None)
    if contact is None:
        return problems + [f"this twin has no contact {doc.get('contact')!r}"]
    if contact.push_direction is None or not np.allclose(contact.push_direction, doc["device"]["push_direction"]):
        problems.append(f"the recorded push direction is not {contact.name}'s in this twin")
    if doc.get("frame") != FRAME.format(body=contact.body, contact=contact.name):
        problems.append(f"the recorded force frame is not {contact.name}'s on {contact.body} in this twin")
    if problems:  # re-simulating someone else's profile says nothing about this one
        return problems
    plan = resolve_plan(twin.spec, {
        "exercise": doc.get("exercise"), "contact": contact.name,
        "targets": {label: {"value": value, "phase": (doc.get("target_phases") or {}).get(label, [0.0, 1.0])}
                    for label, value in (doc.get("targets") or {}).items()},
        "limits": {k: doc["limits"].get(k) for k in ("compression_N", "ap_shear_N", "activation", "reserve_share")
                   if doc["limits"].get(k) is not None},
        "device": {k: doc["device"][k] for k in ("max_force_N", "max_rate_N_per_s", "cone_deg")}
        | {"rate_hz": doc["rate_hz"]}}, source=path)
    exercise = load_exercise(plan.exercise)
    times = sample_times(exercise.cycle_s, plan.device.rate_hz)
    if len(times) != len(forces) or abs(exercise.cycle_s - doc.get("cycle_s", 0)) > 1e-9:
        return [f"{plan.exercise}'s cycle is {exercise.cycle_s:g} s ({len(times)} samples), the profile's "
                f"{doc.get('cycle_s')} s ({len(forces)})"]
    trajectory = precompute(twin.spec, exercise, times, plan.contact, "mujoco")
    patients = {"point estimate": twin.spec}
    if isinstance(doc.get("uncertainty"), dict) and doc["uncertainty"].get("mode") == "morphometry":
        patients |= twin.plausible_specs()
    for label, spec in patients.items():
        evaluation = Evaluator(spec, trajectory)(forces)
        bad = evaluation.non_finite()
        problems += [f"re-simulated in MuJoCo ({label}): non-finite values in {', '.join(bad)}"] if bad else []
        problems += [f"re-simulated in MuJoCo ({label}): {p}" for p in limit_breaches(evaluation, plan)]
    return problems


def _agreement_problems(record: dict, name: str, min_frames: int) -> list[str]:
    """OpenSim's re-solve as recorded: enough frames, and agreement within issue 14's tolerances
    (compression 1 %, targeted activation 0.005) whatever tolerance the record states."""
    required = {"compression_relative": COMPRESSION_TOLERANCE, "targeted_activation": ACTIVATION_TOLERANCE}
    # (planning/opensim_verify.py's own constants; not imported, as that would load OpenSim into `check`)
    difference = record.get("max_difference") if isinstance(record.get("max_difference"), dict) else {}
    problems = []
    for key, tolerance in required.items():
        value = difference.get(key)
        if not _real(value) or not value <= tolerance:
            problems.append(f"{name}: OpenSim's {key.replace('_', ' ')} difference {value!r} is not within {tolerance:g}")
    frames = record.get("frames")
    if not _real(frames) or frames < min_frames:
        problems.append(f"{name}: {frames!r} frames re-solved, fewer than {min_frames}")
    return problems


def _peak_problems(peak: dict, limits: dict) -> list[str]:
    """Each recorded peak that is missing or above its limit."""
    problems = []
    if not isinstance(peak, dict):
        return ["the recorded peaks are not a record"]
    for kind in ("compression_N", "ap_shear_N"):
        for level in LEVELS:
            values, caps = peak.get(kind), limits.get(kind)
            value = values.get(level) if isinstance(values, dict) else None
            cap = caps.get(level) if isinstance(caps, dict) else None
            if value is None or cap is None:
                problems.append(f"verification records no {kind} at {level}")
            elif not (_real(value) and _real(cap)):
                problems.append(f"the recorded {kind} at {level} or its limit is not a number")
            elif value > cap:
                problems.append(f"verified {kind} at {level} ({value:.0f}) exceeds its limit {cap:.0f}")
    caps = limits.get("activation") if isinstance(limits.get("activation"), dict) else {}
    fascicles = peak.get("fascicle_activation") if isinstance(peak.get("fascicle_activation"), dict) else {}
    for group, cap in caps.items():  # a cap bounds every fascicle of the group
        value = fascicles.get(group)
        if value is None:
            problems.append(f"verification records no peak fascicle activation of {group} (capped at {cap})")
        elif not (_real(value) and _real(cap)):
            problems.append(f"the recorded peak {group} fascicle activation or its cap is not a number")
        elif value > cap:
            problems.append(f"verified peak {group} fascicle activation {value:.3f} exceeds its cap {cap}")
    return problems


def write_profile_files(stage: Path, result, formats: tuple[str, ...] = ()) -> dict[str, Path]:
    """profile.csv, profile.json (and profile.ros2.yaml) into a staging folder."""
    data = profile_csv(result.times_s, result.forces_N)
    ros2 = ros2_yaml(result.times_s, result.forces_N, result.plan.contact).encode() if "ros2" in formats else None
    document = profile_document(result, data, ros2)
    files = {"csv": stage / "profile.csv", "json": stage / "profile.json"}
    write_bytes_atomic(files["csv"], data)
    write_json_atomic(files["json"], document)
    if ros2 is not None:
        files["ros2"] = stage / ROS2_FILE
        write_bytes_atomic(files["ros2"], ros2)
    return files

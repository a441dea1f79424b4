"""The plan: what the robot should achieve (targets) and never exceed (limits), on which device.

A plan file (YAML or JSON, docs/planning.md) holds any of these sections; what it leaves out
comes from the patient file's limits, then from data/planning_defaults.yaml:

    exercise: trunk_extension
    contact: thorax_pad
    targets:                       # force-weighted group activation, 0..1, held over the cycle
      multifidus: 0.30             # both sides
      erector_spinae: {value: 0.20, side: left, phase: [0.0, 0.5]}
    limits:
      compression_N: 2500          # every level, or {L4-L5: 2500, L5-S1: 2200}
      ap_shear_N: 700
      activation: {psoas: 0.4}     # bounds every fascicle of the group (not its mean)
    device: {max_force_N: 150, max_rate_N_per_s: 300, cone_deg: 20, rate_hz: 100}
    search: {trials: 200, knots: 5, seed: 0, mode: single}
    uncertainty: morphometry       # limits hold for the weakest and strongest plausible patient too;
                                   # `none`: the point estimate only (research comparisons)

Every fault (unknown group or level, a target above its own cap, a value out of range) is an
InputError naming the field.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from lumbar_twin import DATA_DIR
from lumbar_twin.errors import InputError
from planning.exercise import load_exercise
from planning.profile import Device
from twin.spec import LEVELS, SIDES, ModelSpec
from twin.statics import RESERVE_SHARE_LIMIT

DEFAULTS = DATA_DIR / "planning_defaults.yaml"
TARGET_SIDES = ("both", *SIDES)
SAMPLERS = ("tpe", "nsga2", "random")
#: morphometry: the limits hold for the weakest and strongest plausible patient (the
#: morphometry's measurement band, imaging/uncertainty.py) as well as the point estimate;
#: none: the point estimate only, for research comparisons (written into the profile).
UNCERTAINTY_MODES = ("morphometry", "none")
MODES = ("single", "pareto")


@dataclass(frozen=True)
class Target:
    group: str
    value: float
    side: str = "both"
    phase: tuple[float, float] = (0.0, 1.0)  # part of the cycle where the target holds

    @property
    def sides(self) -> tuple[str, ...]:
        return SIDES if self.side == "both" else (self.side,)

    @property
    def label(self) -> str:
        return self.group if self.side == "both" else f"{self.group}.{self.side}"


@dataclass(frozen=True)
class Limits:
    compression_N: dict[str, float]  # per level
    ap_shear_N: dict[str, float]  # per level, either direction
    activation: dict[str, float]  # per group: cap on the activation of every fascicle of the group
    reserve_share: float = 0.05


@dataclass(frozen=True)
class Search:
    trials: int = 200
    knots: int = 5
    eval_frames: int = 30
    margin: float = 0.05
    sampler: str = "tpe"
    mode: str = "single"
    seed: int = 0


@dataclass(frozen=True)
class Plan:
    exercise: str
    contact: str
    targets: tuple[Target, ...]
    limits: Limits
    device: Device
    search: Search
    uncertainty: str = "morphometry"  # UNCERTAINTY_MODES

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def sha256(self) -> str:
        """Hash of everything that decides the result (the trial budget excluded)."""
        doc = self.to_dict()
        doc["search"].pop("trials")
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def read_plan_file(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(path, f"cannot read the plan ({exc.strerror})") from None
    try:
        doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InputError(path, f"not valid {'JSON' if path.suffix == '.json' else 'YAML'} ({exc})") from None
    if not isinstance(doc, dict):
        raise InputError(path, "a plan must be a mapping (exercise, contact, targets, limits, ...)")
    unknown = set(doc) - {"schema", "exercise", "contact", "targets", "limits", "device", "search", "uncertainty"}
    if unknown:
        raise InputError(path, f"unknown sections {sorted(unknown)}")
    return doc


def resolve_plan(spec: ModelSpec, document: dict, patient_limits: dict | None = None,
                 source: str | Path | None = None) -> Plan:
    """A complete, checked plan from a (partial) plan document over the defaults."""
    defaults = yaml.safe_load(DEFAULTS.read_text())
    patient_limits = patient_limits or {}

    def fail(problem: str, field: str):
        raise InputError(source, problem, field=field)

    if not isinstance(document, dict):
        fail("expected a mapping of plan sections", "plan")
    for key in ("exercise", "contact", "uncertainty"):  # names: anything else is not one
        if document.get(key) is not None and not isinstance(document[key], str):
            fail(f"expected a name, not {document[key]!r}", key)
    for key in ("device", "search"):
        if document.get(key) is not None and not isinstance(document[key], dict):
            fail(f"expected a mapping, not {document[key]!r}", key)
    exercise = document.get("exercise")
    if not exercise:
        fail("which exercise? (e.g. trunk_extension)", "exercise")
    load_exercise(exercise)  # an unknown name fails here, listing the known ones
    contact = document.get("contact", "thorax_pad")
    known = {c.name: c for c in spec.contacts}
    if contact not in known:
        fail(f"unknown contact {contact!r}; known: {', '.join(known)}", "contact")
    if known[contact].push_direction is None:
        pads = [c.name for c in spec.contacts if c.push_direction is not None]
        if not pads:
            fail("this twin records no pad directions (built by an older lumbar-twin): rebuild it with "
                 "`lumbar-twin build`", "contact")
        fail(f"{contact!r} is not a pad a robot can push on; choose {' or '.join(pads)}", "contact")

    groups = sorted({f.group for f in spec.fascicles})
    raw_limits = document.get("limits") or {}
    if not isinstance(raw_limits, dict):
        fail("expected a mapping", "limits")
    unknown = set(raw_limits) - {"compression_N", "ap_shear_N", "activation", "reserve_share"}
    if unknown:
        fail(f"unknown limits {sorted(unknown)} (compression_N, ap_shear_N, activation, reserve_share)", "limits")
    limits = Limits(
        compression_N=_per_level(raw_limits.get("compression_N"), patient_limits.get("compression_N"),
                                 defaults["limits"]["compression_N"], "limits.compression_N", source,
                                 _ceiling(defaults, "compression_N")),
        ap_shear_N=_per_level(raw_limits.get("ap_shear_N"), patient_limits.get("ap_shear_N"),
                              defaults["limits"]["ap_shear_N"], "limits.ap_shear_N", source,
                              _ceiling(defaults, "ap_shear_N")),
        activation=_activation_caps({**(patient_limits.get("activation") or {}), **(raw_limits.get("activation") or {})},
                                    groups, source),
        reserve_share=_positive(raw_limits.get("reserve_share", defaults["limits"]["reserve_share"]),
                                "limits.reserve_share", source, RESERVE_SHARE_LIMIT,
                                "where the statics flags a solution: the muscles cannot hold it "
                                "(twin/statics.py RESERVE_SHARE_LIMIT)"),
    )
    targets = _targets(document.get("targets"), groups, limits, source)
    device = _section(Device, {**defaults["device"], **(document.get("device") or {})}, "device", source)
    search_values = {**defaults["search"], **(document.get("search") or {})}
    if "knots" not in (document.get("search") or {}) and load_exercise(exercise).is_static:
        search_values["knots"] = 1  # a held posture needs a constant force: one knot, a smaller search
    search = _section(Search, search_values, "search", source)
    _check_search(search, source)
    samples = max(1, round(load_exercise(exercise).cycle_s * device.rate_hz))
    if samples < search.eval_frames:  # the search evaluates device samples: it needs that many
        fail(f"{device.rate_hz:g} Hz gives {samples} samples a cycle, fewer than the search's "
             f"{search.eval_frames} frames (search.eval_frames)", "device.rate_hz")
    uncertainty = str(document.get("uncertainty", "morphometry"))
    if uncertainty not in UNCERTAINTY_MODES:
        fail(f"uncertainty must be one of {', '.join(UNCERTAINTY_MODES)}, not {uncertainty!r}", "uncertainty")
    return Plan(exercise, contact, targets, limits, device, search, uncertainty)


def parse_assignments(text: str, option: str) -> dict[str, str]:
    """'a=1,b.c=2' -> {'a': '1', 'b.c': '2'} (command-line lists)."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError(None, f"expected name=value, got {part!r}", field=option)
        out[key.strip()] = value.strip()
    return out


def command_line_overlay(targets: str | None = None, limits: str | None = None,
                         device: str | None = None) -> dict:
    """Plan-document sections from --targets, --limits and --device strings.

    --targets multifidus=0.30,erector_spinae.left=0.2
    --limits compression_N=2500,ap_shear_N=700,L5-S1.compression_N=2200,psoas=0.4   (a group name caps it)
    --device max_force_N=120,rate_hz=200
    """
    overlay: dict[str, Any] = {}
    if targets:
        overlay["targets"] = {key: _number(value, f"--targets {key}")
                              for key, value in parse_assignments(targets, "--targets").items()}
    if limits:
        section: dict[str, Any] = {}
        for key, value in parse_assignments(limits, "--limits").items():
            number = _number(value, f"--limits {key}")
            level, _, kind = key.rpartition(".")
            if kind in ("compression_N", "ap_shear_N"):
                if level:
                    section.setdefault(kind, {})
                    if not isinstance(section[kind], dict):
                        section[kind] = {lv: section[kind] for lv in LEVELS}
                    section[kind][level] = number
                else:
                    section[kind] = number
            elif key == "reserve_share":
                section[key] = number
            else:
                section.setdefault("activation", {})[key] = number
        overlay["limits"] = section
    if device:
        overlay["device"] = {key: _number(value, f"--device {key}")
                             for key, value in parse_assignments(device, "--device").items()}
    return overlay


def merge(document: dict, overlay: dict) -> dict:
    """Overlay wins. Limits, device and search merge key by key (a per-level limit over a single
    number keeps the number at the other levels); targets are replaced whole."""
    out = dict(document)
    for section, values in overlay.items():
        base = out.get(section)
        if section in ("limits", "device", "search") and isinstance(base, dict):
            merged = dict(base)
            for key, value in values.items():
                old = merged.get(key)
                if isinstance(value, dict) and old is not None:
                    old = old if isinstance(old, dict) else {lv: old for lv in LEVELS}
                    merged[key] = {**old, **value}
                else:
                    merged[key] = value
            out[section] = merged
        else:
            out[section] = values
    return out


# -- helpers -------------------------------------------------------------------------------

def _number(value: Any, field: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(None, f"{value!r} is not a number", field=field) from None


def _positive(value: Any, field: str, source, ceiling: float | None = None, why: str = "") -> float:
    number = _number(value, field)
    if not (number > 0 and math.isfinite(number)):  # inf would switch the limit off
        raise InputError(source, f"must be a positive finite number, not {number:g}", field=field)
    if ceiling is not None and number > ceiling:
        raise InputError(source, f"{number:g} is above {ceiling:g}, {why}", field=field)
    return number


def _per_level(value: Any, patient: Any, default: float, field: str, source,
               ceiling: tuple[float, str] | tuple = ()) -> dict[str, float]:
    """A limit at every level: the plan's (a number, or some levels) over the patient's over the default;
    `ceiling`: (the most it may be, the published source of that) - a limit above it protects nothing."""
    out = {}
    for layer, where in ((default, field), (patient, f"patient {field}"), (value, field)):
        if layer is None:
            continue
        if not isinstance(layer, dict):
            layer = {lv: layer for lv in LEVELS}
        unknown = set(layer) - set(LEVELS)
        if unknown:
            raise InputError(source, f"unknown levels {sorted(unknown)}; levels are {', '.join(LEVELS)}", field=where)
        out.update({lv: _positive(v, f"{where}.{lv}", source, *ceiling) for lv, v in layer.items()})
    return out


def _ceiling(defaults: dict, key: str) -> tuple[float, str]:
    entry = defaults["ceilings"][key]
    return float(entry["value"]), entry["why"].strip()


def _activation_caps(raw: dict, groups: list[str], source) -> dict[str, float]:
    caps = {}
    for group, value in raw.items():
        if group not in groups:
            raise InputError(source, f"unknown muscle group {group!r}; groups: {', '.join(groups)}",
                             field="limits.activation")
        cap = _number(value, f"limits.activation.{group}")
        if not 0 < cap <= 1:
            raise InputError(source, f"an activation cap is in (0, 1], not {cap:g}", field=f"limits.activation.{group}")
        caps[group] = cap
    return caps


def _targets(raw: Any, groups: list[str], limits: Limits, source) -> tuple[Target, ...]:
    if not raw:
        raise InputError(source, "no targets: name at least one muscle group and its activation, "
                                 "e.g. multifidus=0.30", field="targets")
    if not isinstance(raw, dict):
        raise InputError(source, "expected a mapping of group to activation", field="targets")
    out = []
    for key, entry in raw.items():
        group, _, side = str(key).partition(".")
        entry = entry if isinstance(entry, dict) else {"value": entry}
        side = entry.get("side", side or "both")
        field = f"targets.{key}"
        if group not in groups:
            raise InputError(source, f"unknown muscle group {group!r}; groups: {', '.join(groups)}", field=field)
        if side not in TARGET_SIDES:
            raise InputError(source, f"side must be one of {', '.join(TARGET_SIDES)}, not {side!r}", field=field)
        value = _number(entry.get("value"), field)
        if not 0 < value <= 1:
            raise InputError(source, f"an activation target is in (0, 1], not {value:g}", field=field)
        cap = limits.activation.get(group)
        if cap is not None and value > cap:
            raise InputError(source, f"target {value:g} is above its own cap {cap:g} "
                                     f"(limits.activation.{group})", field=field)
        try:
            phase = tuple(float(p) for p in entry.get("phase", (0.0, 1.0)))
        except (TypeError, ValueError):
            phase = ()
        if len(phase) != 2 or not 0.0 <= phase[0] < phase[1] <= 1.0:
            raise InputError(source, "phase must be [start, end] with 0 <= start < end <= 1", field=field)
        unknown = set(entry) - {"value", "side", "phase"}
        if unknown:
            raise InputError(source, f"unknown keys {sorted(unknown)} (value, side, phase)", field=field)
        out.append(Target(group, value, side, phase))
    return tuple(out)


def _section(cls, values: dict, name: str, source):
    allowed = {f.name for f in fields(cls)}
    unknown = set(values) - allowed
    if unknown:
        raise InputError(source, f"unknown keys {sorted(unknown)}; known: {', '.join(sorted(allowed))}", field=name)
    typed = {}
    for f in fields(cls):
        if f.name in values:
            value = values[f.name]
            kind = {"int": int, "str": str}.get(f.type, float)  # annotations are strings here
            if kind is str:
                typed[f.name] = str(value)
            elif kind is int:
                number = _number(value, f"{name}.{f.name}")
                if number != int(number):
                    raise InputError(source, f"must be a whole number, not {value!r}", field=f"{name}.{f.name}")
                typed[f.name] = int(number)
            else:
                typed[f.name] = _number(value, f"{name}.{f.name}")
    return cls(**typed)


def _check_search(search: Search, source) -> None:
    checks = [
        (search.trials >= 1, "search.trials", "at least one trial"),
        (1 <= search.knots <= 12, "search.knots", "1..12 knots"),
        (search.eval_frames >= 4, "search.eval_frames", "at least 4 frames a cycle"),
        (0.0 <= search.margin < 0.5, "search.margin", "a margin in 0..0.5"),
        (search.sampler in SAMPLERS, "search.sampler", f"one of {', '.join(SAMPLERS)}"),
        (search.mode in MODES, "search.mode", f"one of {', '.join(MODES)}"),
    ]
    for ok, field, expected in checks:
        if not ok:
            raise InputError(source, f"expected {expected}", field=field)

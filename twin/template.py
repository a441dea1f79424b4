"""Read the template model (`data/lumbar_template.yaml`) into a resolved ModelSpec.

The YAML names landmarks and writes only the right side; here landmarks become points in
body frames, the left side is mirrored (z -> -z), and each fascicle gets the levels it
crosses, its share of its group's PCSA, its force (PCSA x specific tension), and fibre and
tendon lengths from its length in neutral standing.
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from lumbar_twin import DATA_DIR
from lumbar_twin.errors import InputError
from twin.kinematics import body_transforms, fascicle_length, joint_chain
from twin.spec import (
    COORDINATE_KINDS,
    LEVELS,
    Body,
    Contact,
    Coordinate,
    Fascicle,
    Joint,
    ModelSpec,
    PathPoint,
    ReferenceMorphometry,
    coordinate_name,
)

TEMPLATE_PATH = DATA_DIR / "lumbar_template.yaml"
#: Optimal fibre length never exceeds this fraction of the fascicle's neutral length.
MAX_FIBER_FRACTION = 0.8
#: ... unless the fibre operating range needs them longer, up to this fraction.
MAX_MUSCLE_FRACTION = 0.95


def load_template(path: str | Path = TEMPLATE_PATH) -> ModelSpec:
    """The template ModelSpec (cached for the default file)."""
    path = Path(path)
    if path == TEMPLATE_PATH:
        return _load_default()
    return _resolve(_read_yaml(path), path)


@lru_cache(maxsize=1)
def _load_default() -> ModelSpec:
    return _resolve(_read_yaml(TEMPLATE_PATH), TEMPLATE_PATH)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError:
        raise InputError(path, "template file not found") from None
    except yaml.YAMLError as exc:
        raise InputError(path, f"not valid YAML ({exc.__class__.__name__})") from None


def _resolve(raw: dict[str, Any], path: Path) -> ModelSpec:
    bodies = tuple(
        Body(name, float(b["mass_kg"]), tuple(b["com_m"]), tuple(float(v) for v in b["inertia_kg_m2"]))
        for name, b in raw["bodies"].items()
        if name != "source"
    )
    joints = _joints(raw["joints"])
    landmarks = {body: {k: tuple(map(float, v)) for k, v in marks.items()}
                 for body, marks in raw["landmarks"].items() if body != "source"}
    sigma = float(raw["specific_tension_N_per_cm2"]["value"])
    groups = raw["muscle_groups"]

    skeleton = ModelSpec(
        name=raw["name"], sex=raw["subject"]["sex"], height_m=float(raw["subject"]["height_m"]),
        mass_kg=float(raw["subject"]["mass_kg"]), gravity_m_per_s2=tuple(raw["gravity_m_per_s2"]),
        specific_tension_N_per_cm2=sigma, bodies=bodies, joints=joints, fascicles=(),
        reference_morphometry=_reference(raw["reference_morphometry"]),
    )
    neutral = body_transforms(skeleton)
    operating = raw["fiber_operating_range"]
    flexed = body_transforms(skeleton, {
        coordinate_name(level, "flexion"): math.radians(float(operating["full_flexion_deg"])) * float(share)
        for level, share in raw["lumbar_rhythm"]["flexion"].items()
    })

    right = raw["fascicles"]["right"]
    per_group = {g: sum(1 for f in right if f["group"] == g) for g in groups}
    fascicles = []
    for side, mirror in (("right", 1.0), ("left", -1.0)):
        for entry in right:
            group = groups.get(entry["group"])
            if group is None:
                raise InputError(path, f"fascicle {entry['name']} names unknown group {entry['group']!r}")
            points = tuple(_point(landmarks, ref, mirror, path) for ref in entry["path"])
            draft = Fascicle(
                name=f"{entry['name']}_{side[0]}", group=entry["group"], side=side, points=points,
                optimal_fiber_length_m=0.0, tendon_slack_length_m=0.0, pennation_rad=0.0,
                pcsa_cm2=0.0, max_isometric_force_N=0.0, levels=(), part=entry.get("part"),
            )
            fascicles.append(_architecture(draft, group, per_group[entry["group"]], sigma, neutral, flexed,
                                           float(operating["fiber_length_at_full_flexion"]), skeleton))

    sources = {key: " ".join(str(block["source"]).split()) for key, block in raw.items()
               if isinstance(block, dict) and "source" in block}
    sources.update({f"muscle_groups.{g}": " ".join(str(b["source"]).split()) for g, b in groups.items()})
    contacts = tuple(Contact(name, c["body"], tuple(map(float, c["location_m"])),
                             tuple(map(float, c["push_direction"])) if "push_direction" in c else None)
                     for name, c in raw["contacts"].items() if name != "source")
    rhythm = {kind: {lv: float(v) for lv, v in row.items()}
              for kind, row in raw["lumbar_rhythm"].items() if kind != "source"}
    return ModelSpec(**{**skeleton.__dict__, "fascicles": tuple(fascicles), "contacts": contacts,
                        "lumbar_rhythm": rhythm, "sources": sources})


def _joints(raw: dict[str, Any]) -> tuple[Joint, ...]:
    lo, hi = (math.radians(v) for v in raw["range_deg"])
    joints = []
    for name, j in raw["intervertebral"].items():
        level = name.replace("_", "-")
        coords = tuple(
            Coordinate(
                name=coordinate_name(level, kind), kind=kind,
                axis=tuple(float(v) for v in raw["coordinates"][kind]["axis"]), range_rad=(lo, hi),
                stiffness_Nm_per_rad=float(raw["stiffness_Nm_per_deg"][kind]) * 180.0 / math.pi,
            )
            for kind in COORDINATE_KINDS
        )
        joints.append(Joint(name, j["parent"], j["child"], tuple(map(float, j["location_m"])),
                            tuple(math.radians(v) for v in j["orientation_deg"]), coords, level))
    for name, j in raw["welds"].items():
        joints.append(Joint(name, j["parent"], j["child"], tuple(map(float, j["location_m"])),
                            tuple(math.radians(v) for v in j["orientation_deg"])))
    return tuple(joints)


def _reference(raw: dict[str, Any]) -> ReferenceMorphometry:
    return ReferenceMorphometry(
        csa_mm2={g: {lv: float(v) for lv, v in row.items()} for g, row in raw["csa_mm2"].items()},
        fat_fraction={g: float(v) for g, v in raw["fat_fraction"].items()},
    )


def _point(landmarks, ref: str, mirror: float, path: Path) -> PathPoint:
    body, _, mark = ref.partition(".")
    try:
        x, y, z = landmarks[body][mark]
    except KeyError:
        raise InputError(path, f"unknown landmark {ref!r}") from None
    return PathPoint(body, (x, y, z * mirror))


def _architecture(draft: Fascicle, group: dict, n_in_group: int, sigma: float, neutral, flexed,
                  full_flexion_fiber: float, skeleton) -> Fascicle:
    crossed = {j.level for a, b in zip(draft.points, draft.points[1:])
               for j in joint_chain(skeleton, a.body, b.body) if j.level}
    levels = tuple(sorted(crossed, key=LEVELS.index))
    fiber = group["optimal_fiber_length_m"]
    if isinstance(fiber, dict):
        fiber = fiber[draft.part]
    length = fascicle_length(draft, neutral)
    neutral_fiber = float(group["neutral_fiber_length"])
    fiber = min(float(fiber), MAX_FIBER_FRACTION * length / neutral_fiber)
    stretch = fascicle_length(draft, flexed) - length  # lengthening in full flexion [m]
    if stretch > 0:  # long enough that full flexion stays on the physiological range,
        # but never longer than the fascicle itself (tendon slack length >= 5 % of it)
        needed = stretch / (full_flexion_fiber - neutral_fiber)
        fiber = max(fiber, min(needed, MAX_MUSCLE_FRACTION * length / neutral_fiber))
    pennation = math.radians(float(group["pennation_deg"]))
    pcsa = float(group["pcsa_cm2"]) / n_in_group
    return Fascicle(
        **{**draft.__dict__,
           "optimal_fiber_length_m": fiber,
           "tendon_slack_length_m": length - neutral_fiber * fiber * math.cos(pennation),
           "pennation_rad": pennation,
           "pcsa_cm2": pcsa,
           "max_isometric_force_N": pcsa * sigma,
           "levels": levels}
    )

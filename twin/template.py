"""Read the template model (`data/lumbar_template.yaml`) into a resolved ModelSpec.

The YAML names landmarks and writes only the right side; here landmarks become points in
body frames, the left side is mirrored (z -> -z), and each fascicle gets the levels it
crosses, its share of its group's PCSA, its force (PCSA x specific tension), and fibre and
tendon lengths from its length in neutral standing, so that its fibres stay on their working
range over the whole range of motion (`twin.motion`); a fascicle that cannot stops the build.
"""
from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from lumbar_twin import DATA_DIR
from lumbar_twin.errors import InputError
from twin.kinematics import body_transforms, fascicle_length, joint_chain
from twin.motion import path_lengths, range_of_motion_poses
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
    joints = _joints(raw["joints"], raw["lumbar_rhythm"])
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

    working = tuple(float(v) for v in operating["working_range"])
    fascicles = fit_working_range(fascicles, skeleton, working, path)

    sources = {key: " ".join(str(block["source"]).split()) for key, block in raw.items()
               if isinstance(block, dict) and "source" in block}
    sources.update({f"muscle_groups.{g}": " ".join(str(b["source"]).split()) for g, b in groups.items()})
    contacts = tuple(Contact(name, c["body"], tuple(map(float, c["location_m"])),
                             tuple(map(float, c["push_direction"])) if "push_direction" in c else None)
                     for name, c in raw["contacts"].items() if name != "source")
    rhythm = {kind: {lv: float(v) for lv, v in row.items()}
              for kind, row in raw["lumbar_rhythm"].items() if kind != "source"}
    return ModelSpec(**{**skeleton.__dict__, "fascicles": tuple(fascicles), "contacts": contacts,
                        "lumbar_rhythm": rhythm, "sources": sources, "fiber_working_range": working})


def _joints(raw: dict[str, Any], rhythm: dict[str, Any]) -> tuple[Joint, ...]:
    motion = {kind: tuple(math.radians(float(v)) for v in raw["range_of_motion_deg"][kind])
              for kind in COORDINATE_KINDS}
    joints = []
    for name, j in raw["intervertebral"].items():
        level = name.replace("_", "-")
        # the same product as twin.posture: a global angle at its limit puts each level at its limit
        coords = tuple(
            Coordinate(
                name=coordinate_name(level, kind), kind=kind,
                axis=tuple(float(v) for v in raw["coordinates"][kind]["axis"]),
                range_rad=(motion[kind][0] * float(rhythm[kind][level]), motion[kind][1] * float(rhythm[kind][level])),
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


#: A tendon slack length never falls below this fraction of the fascicle's neutral length.
MIN_SLACK_FRACTION = 1.0 - MAX_MUSCLE_FRACTION


def fit_working_range(fascicles, skeleton: ModelSpec, working: tuple[float, float], path: Path) -> list[Fascicle]:
    """Fibre and tendon lengths that keep every fibre within `working` (normalised fibre length)
    over the range of motion.

    A rigid tendon passes every change of path length to the fibre. First the neutral fibre
    length stays (tendon slack follows it) and the optimal fibre length grows only as far as the
    path's shortening and lengthening from neutral need; if that leaves less tendon than
    MIN_SLACK_FRACTION of the path, the tendon takes that minimum and the optimal fibre length is
    the one nearest the first choice that maps the whole path range into `working` (the neutral
    fibre length moves). If no optimal fibre length does, the fascicle is named in an InputError.
    Pennation: fibre height lopt sin(alpha) is constant, so the band along the tendon is
    sqrt(n^2 - sin^2 alpha).
    """
    lengths = path_lengths(replace(skeleton, fascicles=tuple(fascicles)), range_of_motion_poses(skeleton))
    neutral, shortest, longest = lengths[0], lengths.min(axis=0), lengths.max(axis=0)
    lo, hi = working
    out = []
    for f, ln, lmin, lmax in zip(fascicles, neutral, shortest, longest):
        sin2 = math.sin(f.pennation_rad) ** 2
        a_lo, a_hi = math.sqrt(lo**2 - sin2), math.sqrt(hi**2 - sin2)
        a0 = (ln - f.tendon_slack_length_m) / f.optimal_fiber_length_m  # neutral length along the tendon
        if not a_lo < a0 < a_hi:
            raise InputError(path, f"fascicle {f.name}: its neutral fibre length {a0:.2f} is outside the "
                                   f"working range {lo:g}-{hi:g}")
        fiber = max(f.optimal_fiber_length_m, (ln - lmin) / (a0 - a_lo), (lmax - ln) / (a_hi - a0))
        slack = ln - a0 * fiber
        if slack < MIN_SLACK_FRACTION * ln:
            slack = MIN_SLACK_FRACTION * ln
            shortest_fiber, longest_fiber = (lmax - slack) / a_hi, (lmin - slack) / a_lo
            if shortest_fiber > longest_fiber:
                raise InputError(path, (
                    f"fascicle {f.name}: its path runs from {lmin * 1000:.1f} to {lmax * 1000:.1f} mm over the "
                    f"range of motion, more than any fibre can follow within {lo:g}-{hi:g} of its optimal length "
                    f"with a rigid tendon of at least {slack * 1000:.1f} mm (it would need an optimal fibre "
                    f"length of at least {shortest_fiber * 1000:.1f} and at most {longest_fiber * 1000:.1f} mm)"))
            fiber = min(max(f.optimal_fiber_length_m, shortest_fiber), longest_fiber)
        out.append(Fascicle(**{**f.__dict__, "optimal_fiber_length_m": fiber, "tendon_slack_length_m": slack}))
    return out

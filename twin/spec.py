"""ModelSpec: the one description of a lumbar model that both engine builders read.

Plain frozen dataclasses in SI units, with the model's canonical names. A spec round-trips
through a plain dict (and so through JSON: `twin.json`). The template spec is read from
`data/lumbar_template.yaml` by `twin.template`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from imaging.morphometry import LEVELS, SIDES  # noqa: F401  (re-exported: canonical names live here too)
from imaging.morphometry import MUSCLES as IMAGED_GROUPS  # groups measured on MRI

#: Every muscle group in the model; the imaged ones first.
GROUPS = IMAGED_GROUPS + ("rectus_abdominis", "external_oblique", "internal_oblique")
#: One colour per group, shared by pictures and the MuJoCo model (colour-blind safe Dark2).
GROUP_COLORS = {
    "psoas": (0.85, 0.37, 0.01),
    "quadratus_lumborum": (0.46, 0.44, 0.70),
    "erector_spinae": (0.11, 0.62, 0.47),
    "multifidus": (0.91, 0.16, 0.54),
    "rectus_abdominis": (0.40, 0.65, 0.12),
    "external_oblique": (0.90, 0.67, 0.01),
    "internal_oblique": (0.65, 0.46, 0.11),
}
#: Coordinate kinds per intervertebral joint, in the joint's axis order (both engines).
COORDINATE_KINDS = ("flexion", "lateral", "rotation")


def joint_name(level: str) -> str:
    """'L4-L5' -> 'L4_L5' (joint and coordinate prefix)."""
    return level.replace("-", "_")


def coordinate_name(level: str, kind: str) -> str:
    """('L4-L5', 'flexion') -> 'L4_L5_flexion', the same name in OpenSim and MuJoCo."""
    return f"{joint_name(level)}_{kind}"


#: All 15 lumbar coordinates, caudal level last, in (level, kind) order.
COORDINATE_NAMES = tuple(coordinate_name(lv, k) for lv in LEVELS for k in COORDINATE_KINDS)

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class Body:
    name: str
    mass_kg: float
    com_m: Vec3
    #: Ixx, Iyy, Izz, Ixy, Ixz, Iyz about the centre of mass, in the body frame.
    inertia_kg_m2: tuple[float, float, float, float, float, float]


@dataclass(frozen=True)
class Coordinate:
    name: str
    kind: str  # one of COORDINATE_KINDS
    axis: Vec3  # unit vector in the child frame
    range_rad: tuple[float, float]
    stiffness_Nm_per_rad: float


@dataclass(frozen=True)
class Joint:
    """A joint from `parent` to `child`; no coordinates means a weld.

    The child frame sits at `location_m` in the parent frame, rotated by `orientation_rad`
    (body-fixed X-Y-Z Euler angles, OpenSim's convention); the coordinates then rotate the
    child about their axes in order.
    """

    name: str
    parent: str
    child: str
    location_m: Vec3
    orientation_rad: Vec3
    coordinates: tuple[Coordinate, ...] = ()
    level: str | None = None  # 'L4-L5' for intervertebral joints


@dataclass(frozen=True)
class PathPoint:
    body: str
    location_m: Vec3


@dataclass(frozen=True)
class Fascicle:
    name: str  # OpenSim muscle name == MuJoCo actuator and tendon name
    group: str
    side: str
    points: tuple[PathPoint, ...]  # origin, via points..., insertion
    optimal_fiber_length_m: float
    tendon_slack_length_m: float
    pennation_rad: float
    pcsa_cm2: float
    max_isometric_force_N: float
    levels: tuple[str, ...]  # intervertebral levels the fascicle crosses
    part: str | None = None  # e.g. 'iliocostalis' within erector_spinae


@dataclass(frozen=True)
class Contact:
    """A named point where external loads act (a robot pad, the hands)."""

    name: str
    body: str
    location_m: Vec3
    #: Unit direction, in the body's frame, in which a pad here can push (None: any, e.g. a held mass).
    push_direction: Vec3 | None = None


@dataclass(frozen=True)
class ReferenceMorphometry:
    """Healthy reference CSA per group and level (one side), the template's own."""

    csa_mm2: dict[str, dict[str, float]]
    fat_fraction: dict[str, float]

    def lean_csa_mm2(self, group: str, level: str) -> float:
        return self.csa_mm2[group][level] * (1.0 - self.fat_fraction[group])


@dataclass(frozen=True)
class ModelSpec:
    name: str
    sex: str
    height_m: float
    mass_kg: float
    gravity_m_per_s2: Vec3
    specific_tension_N_per_cm2: float
    bodies: tuple[Body, ...]
    joints: tuple[Joint, ...]
    fascicles: tuple[Fascicle, ...]
    reference_morphometry: ReferenceMorphometry
    contacts: tuple[Contact, ...] = ()
    #: {kind: {level: share}}: how a global trunk angle is spread over the levels.
    lumbar_rhythm: dict[str, dict[str, float]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    #: Normalised fibre lengths every fibre keeps to over the coordinate ranges (template).
    fiber_working_range: tuple[float, float] = (0.5, 1.6)

    # -- lookups ---------------------------------------------------------------------------
    def body(self, name: str) -> Body:
        return next(b for b in self.bodies if b.name == name)

    def joint(self, name: str) -> Joint:
        return next(j for j in self.joints if j.name == name)

    def fascicle(self, name: str) -> Fascicle:
        return next(f for f in self.fascicles if f.name == name)

    def contact(self, name: str) -> Contact:
        for c in self.contacts:
            if c.name == name:
                return c
        raise KeyError(f"unknown contact {name!r}; known: {', '.join(c.name for c in self.contacts)}")

    @property
    def coordinates(self) -> tuple[Coordinate, ...]:
        return tuple(c for j in self.joints for c in j.coordinates)

    @property
    def coordinate_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.coordinates)

    @property
    def fascicle_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fascicles)

    # -- files -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelSpec":
        return cls(
            name=data["name"],
            sex=data["sex"],
            height_m=float(data["height_m"]),
            mass_kg=float(data["mass_kg"]),
            gravity_m_per_s2=_vec(data["gravity_m_per_s2"]),
            specific_tension_N_per_cm2=float(data["specific_tension_N_per_cm2"]),
            bodies=tuple(
                Body(b["name"], float(b["mass_kg"]), _vec(b["com_m"]), tuple(map(float, b["inertia_kg_m2"])))
                for b in data["bodies"]
            ),
            joints=tuple(
                Joint(
                    name=j["name"],
                    parent=j["parent"],
                    child=j["child"],
                    location_m=_vec(j["location_m"]),
                    orientation_rad=_vec(j["orientation_rad"]),
                    coordinates=tuple(
                        Coordinate(
                            c["name"], c["kind"], _vec(c["axis"]),
                            (float(c["range_rad"][0]), float(c["range_rad"][1])),
                            float(c["stiffness_Nm_per_rad"]),
                        )
                        for c in j["coordinates"]
                    ),
                    level=j.get("level"),
                )
                for j in data["joints"]
            ),
            fascicles=tuple(
                Fascicle(
                    name=f["name"],
                    group=f["group"],
                    side=f["side"],
                    points=tuple(PathPoint(p["body"], _vec(p["location_m"])) for p in f["points"]),
                    optimal_fiber_length_m=float(f["optimal_fiber_length_m"]),
                    tendon_slack_length_m=float(f["tendon_slack_length_m"]),
                    pennation_rad=float(f["pennation_rad"]),
                    pcsa_cm2=float(f["pcsa_cm2"]),
                    max_isometric_force_N=float(f["max_isometric_force_N"]),
                    levels=tuple(f["levels"]),
                    part=f.get("part"),
                )
                for f in data["fascicles"]
            ),
            reference_morphometry=ReferenceMorphometry(
                csa_mm2={g: {lv: float(v) for lv, v in row.items()}
                         for g, row in data["reference_morphometry"]["csa_mm2"].items()},
                fat_fraction={g: float(v) for g, v in data["reference_morphometry"]["fat_fraction"].items()},
            ),
            contacts=tuple(Contact(c["name"], c["body"], _vec(c["location_m"]),
                                   _vec(c["push_direction"]) if c.get("push_direction") else None)
                           for c in data.get("contacts", ())),
            lumbar_rhythm={k: {lv: float(v) for lv, v in row.items()} for k, row in data.get("lumbar_rhythm", {}).items()},
            sources=dict(data.get("sources", {})),
            fiber_working_range=tuple(float(v) for v in data.get("fiber_working_range", (0.5, 1.6))),
        )


def _vec(values: Any) -> Vec3:
    x, y, z = (float(v) for v in values)
    return (x, y, z)

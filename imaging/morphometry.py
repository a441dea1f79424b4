"""Morphometry: per muscle x side x disc level cross-sectional area and fat infiltration.

The imaging pipeline writes it (`morphometry.json`, schema `lumbar-twin/morphometry@1`) and the
patient file accepts it. CSA in mm^2, fat fraction as a fraction 0..1.
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lumbar_twin import DATA_DIR
from lumbar_twin.errors import InputError
from lumbar_twin.fileio import read_json

SCHEMA = "lumbar-twin/morphometry@1"
#: Muscles the imaging pipeline measures (canonical names, DESIGN.md).
MUSCLES = ("psoas", "quadratus_lumborum", "erector_spinae", "multifidus")
SIDES = ("left", "right")
LEVELS = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")
#: Merged classes some external segmenters write, and the muscles each holds. They stay rows of
#: their own ("an autochthon row is not called erector spinae"); the twin uses them by a
#: documented rule (twin.morphometry_use).
MERGED = {"autochthon": ("erector_spinae", "multifidus"), "iliopsoas": ("psoas", "iliacus")}
ROW_MUSCLES = MUSCLES + tuple(MERGED)
#: A row's QC status: pass, warn (look at qc.png), fail (the twin refuses it unless accepted).
QC_STATUSES = ("pass", "warn", "fail")
@functools.cache
def healthy_csa_mm2() -> dict[str, dict[str, float]]:
    """Healthy adult CSA (mm^2) per muscle and disc level, one side: the template's reference
    morphometry (data/lumbar_template.yaml, with its sources)."""
    with open(DATA_DIR / "lumbar_template.yaml") as stream:
        table = yaml.safe_load(stream)["reference_morphometry"]["csa_mm2"]
    return {muscle: {level: float(v) for level, v in row.items()} for muscle, row in table.items()}


#: lean CSA may exceed CSA x (1 - fat fraction) by this much (rounding in the writer).
LEAN_TOLERANCE_MM2 = 1.0


#: Row flags: a measurement written but not to be trusted (imaging.water_fat_swap).
ROW_FLAGS = ("water_fat_swap",)


@dataclass(frozen=True)
class MuscleMeasure:
    muscle: str
    side: str
    level: str
    csa_mm2: float
    lean_csa_mm2: float
    fat_fraction: float
    qc: str = "pass"
    qc_reasons: tuple[str, ...] = ()
    #: Optional measurement uncertainty of this row (imaging/uncertainty.py gives the method's
    #: default when absent): CSA relative (0.1 = +-10 %), fat fraction absolute.
    csa_uncertainty: float | None = None
    fat_fraction_uncertainty: float | None = None
    #: Faults found in this row's measurement (ROW_FLAGS): "water_fat_swap" = water and fat
    #: swapped near this muscle on the slices its fat fraction is read from, so the fat
    #: fraction and lean CSA are wrong (the row's QC fails too). Written to morphometry.json
    #: only when not empty.
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Morphometry:
    subject: str
    muscles: tuple[MuscleMeasure, ...]
    provenance: dict[str, Any] = field(default_factory=dict)
    #: Whole-muscle volume over the imaged levels, per "muscle_side" (optional).
    volumes_mm3: dict[str, float] = field(default_factory=dict)

    def get(self, muscle: str, side: str, level: str) -> MuscleMeasure | None:
        return next((m for m in self.muscles if (m.muscle, m.side, m.level) == (muscle, side, level)), None)

    def to_dict(self) -> dict[str, Any]:
        out = {"schema": SCHEMA, "subject": self.subject,
               "muscles": [_row(m) for m in self.muscles], "provenance": dict(self.provenance)}
        if self.volumes_mm3:
            out["volumes_mm3"] = dict(self.volumes_mm3)
        return out


def _row(m: MuscleMeasure) -> dict[str, Any]:
    """A row as JSON: optional fields (uncertainties, flags) only when set."""
    row = {k: v for k, v in asdict(m).items() if v is not None}
    if m.flags:
        row["flags"] = list(m.flags)
    else:
        del row["flags"]
    return row


def parse_morphometry(data: Any, source: str | Path, prefix: str = "") -> Morphometry:
    """Validate a morphometry object; errors name `source` and the field (after `prefix`)."""
    try:
        model = _MorphometryFile.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, source, prefix) from None
    return Morphometry(
        subject=model.subject,
        muscles=tuple(MuscleMeasure(**{**m.model_dump(), "qc_reasons": tuple(m.qc_reasons), "flags": tuple(m.flags)})
                      for m in model.muscles),
        provenance=model.provenance,
        volumes_mm3=dict(model.volumes_mm3),
    )


def load_morphometry(path: str | Path) -> Morphometry:
    return parse_morphometry(read_json(path), path)


def validation_error(exc: ValidationError, source: str | Path, prefix: str = "") -> InputError:
    """The first pydantic error as an InputError that names the file and the field."""
    first = exc.errors()[0]
    loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"]).lstrip(".")
    field_name = f"{prefix}.{loc}" if prefix and loc else (prefix or loc or None)
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    elif first["type"] == "missing":
        message = "missing"
    elif "input" in first and first["type"] not in ("value_error",) and not isinstance(first["input"], dict):
        message = f"{message} (got {first['input']!r})"
    return InputError(source, message, field_name)


class _Measure(BaseModel):
    model_config = ConfigDict(extra="forbid")
    muscle: str
    side: Literal["left", "right"]
    level: str
    csa_mm2: float
    lean_csa_mm2: float
    fat_fraction: float
    qc: Literal["pass", "warn", "fail"] = "pass"
    qc_reasons: list[str] = []
    csa_uncertainty: float | None = Field(None, ge=0.0, le=0.9)
    fat_fraction_uncertainty: float | None = Field(None, ge=0.0, le=0.5)
    flags: list[str] = []

    @field_validator("flags")
    @classmethod
    def _known_flags(cls, value: list[str]) -> list[str]:
        unknown = [f for f in value if f not in ROW_FLAGS]
        if unknown:
            raise ValueError(f"unknown row flag {unknown[0]!r}; expected one of {', '.join(ROW_FLAGS)}")
        return value

    @field_validator("muscle")
    @classmethod
    def _known_muscle(cls, value: str) -> str:
        if value not in ROW_MUSCLES:
            raise ValueError(f"unknown muscle {value!r}; expected one of {', '.join(ROW_MUSCLES)}")
        return value

    @field_validator("level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value not in LEVELS:
            raise ValueError(f"unknown level {value!r}; expected one of {', '.join(LEVELS)}")
        return value

    @field_validator("fat_fraction")
    @classmethod
    def _fraction(cls, value: float) -> float:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"fat fraction {value} is outside 0..1 (a fraction, not a percentage)")
        return value

    @field_validator("csa_mm2", "lean_csa_mm2")
    @classmethod
    def _area(cls, value: float) -> float:
        if not 0.0 <= value <= 20000.0:
            raise ValueError(f"{value} mm^2 is outside 0..20000 mm^2")
        return value

    @model_validator(mode="after")
    def _lean_within_csa(self) -> "_Measure":
        if self.lean_csa_mm2 > self.csa_mm2 + LEAN_TOLERANCE_MM2:
            raise ValueError(f"lean_csa_mm2 {self.lean_csa_mm2} exceeds csa_mm2 {self.csa_mm2}")
        return self


class _MorphometryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_: Literal["lumbar-twin/morphometry@1"] = Field(SCHEMA, alias="schema")
    subject: str
    muscles: list[_Measure]
    provenance: dict[str, Any] = {}
    volumes_mm3: dict[str, float] = {}

    @model_validator(mode="after")
    def _unique(self) -> "_MorphometryFile":
        seen = set()
        for m in self.muscles:
            key = (m.muscle, m.side, m.level)
            if key in seen:
                raise ValueError(f"{m.muscle} {m.side} {m.level} is given twice")
            seen.add(key)
        return self

"""The patient file: pseudonymous anthropometry, optional morphometry, strength and limits.

JSON or YAML, schema `lumbar-twin/patient@1` (documented in the README). Every fault is an
InputError naming the file and the field; nothing is guessed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from imaging.morphometry import Morphometry, parse_morphometry, validation_error
from lumbar_twin.errors import InputError
from lumbar_twin.fileio import read_json
from twin.spec import GROUPS

SCHEMA = "lumbar-twin/patient@1"
#: Plausible adult ranges; outside them a typo is far likelier than a patient.
HEIGHT_RANGE_M = (1.20, 2.30)
MASS_RANGE_KG = (30.0, 250.0)
AGE_RANGE_YEARS = (18, 110)
STRENGTH_FACTOR_RANGE = (0.1, 2.0)


@dataclass(frozen=True)
class ClinicalLimits:
    """Caps a clinician sets for this patient; None means 'use the planner's default'."""

    compression_N: float | None = None
    ap_shear_N: float | None = None
    lat_shear_N: float | None = None
    activation: dict[str, float] = field(default_factory=dict)  # per group, 0..1


@dataclass(frozen=True)
class Patient:
    id: str
    sex: str
    age: int
    height_m: float
    mass_kg: float
    morphometry: Morphometry | None = None
    strength_factors: dict[str, float] = field(default_factory=dict)
    limits: ClinicalLimits = field(default_factory=ClinicalLimits)
    #: Files read to make this patient (for provenance hashes): patient, morphometry.
    sources: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """What of the patient goes into outputs: pseudonym and numbers, nothing else."""
        return {
            "id": self.id, "sex": self.sex, "age": self.age, "height_m": self.height_m, "mass_kg": self.mass_kg,
            "strength_factors": dict(self.strength_factors),
            "limits": {"compression_N": self.limits.compression_N, "ap_shear_N": self.limits.ap_shear_N,
                       "lat_shear_N": self.limits.lat_shear_N, "activation": dict(self.limits.activation)},
            "morphometry_subject": self.morphometry.subject if self.morphometry else None,
        }


def load_patient(path: str | Path) -> Patient:
    """Read and validate a patient file (.json, .yaml or .yml)."""
    path = Path(path)
    raw = _read(path)
    try:
        model = _PatientFile.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(exc, path) from None

    sources = {"patient": str(path)}
    morphometry = None
    if isinstance(model.morphometry, str):
        morph_path = (path.parent / model.morphometry)
        morphometry = parse_morphometry(read_json(morph_path), morph_path)
        sources["morphometry"] = str(morph_path)
    elif model.morphometry is not None:
        morphometry = parse_morphometry(model.morphometry, path, prefix="morphometry")

    limits = model.limits or _Limits()
    return Patient(
        id=model.id, sex=model.sex, age=model.age, height_m=model.height_m, mass_kg=model.mass_kg,
        morphometry=morphometry, strength_factors=dict(model.strength_factors),
        limits=ClinicalLimits(limits.compression_N, limits.ap_shear_N, limits.lat_shear_N, dict(limits.activation)),
        sources=sources,
    )


def _read(path: Path) -> Any:
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            with open(path, encoding="utf-8") as handle:
                data = yaml.safe_load(handle)
        except FileNotFoundError:
            raise InputError(path, "file not found") from None
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise InputError(path, f"not valid YAML ({exc.__class__.__name__})") from None
    else:
        data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(path, "expected an object with the patient's fields at the top level")
    return data


def _in_range(value: float, bounds: tuple[float, float], unit: str, what: str) -> float:
    lo, hi = bounds
    if not lo <= value <= hi:
        raise ValueError(f"{value:g} {unit} is outside the {what} range {lo:g}-{hi:g} {unit}")
    return value


def _known_groups(values: dict[str, float], bounds: tuple[float, float], what: str) -> dict[str, float]:
    for group, value in values.items():
        if group not in GROUPS:
            raise ValueError(f"unknown muscle group {group!r}; expected one of {', '.join(GROUPS)}")
        _in_range(value, bounds, "", f"{what} for {group}")
    return values


class _Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    compression_N: float | None = Field(None, gt=0)
    ap_shear_N: float | None = Field(None, gt=0)
    lat_shear_N: float | None = Field(None, gt=0)
    activation: dict[str, float] = {}

    @field_validator("activation")
    @classmethod
    def _caps(cls, value: dict[str, float]) -> dict[str, float]:
        return _known_groups(value, (0.0, 1.0), "activation cap")


class _PatientFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_: Literal["lumbar-twin/patient@1"] = Field(SCHEMA, alias="schema")
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    sex: Literal["female", "male"]
    age: int
    height_m: float
    mass_kg: float
    morphometry: str | dict[str, Any] | None = None
    strength_factors: dict[str, float] = {}
    limits: _Limits | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _pseudonym(cls, value: Any) -> Any:
        if isinstance(value, str) and " " in value.strip():
            raise ValueError("must be a pseudonymous code (letters, digits, . _ -), not a name")
        return value

    @field_validator("age")
    @classmethod
    def _age(cls, value: int) -> int:
        return int(_in_range(value, AGE_RANGE_YEARS, "years", "adult age"))

    @field_validator("height_m")
    @classmethod
    def _height(cls, value: float) -> float:
        try:
            return _in_range(value, HEIGHT_RANGE_M, "m", "human height")
        except ValueError as exc:
            if 100 <= value <= 250:
                raise ValueError(f"{exc} (metres, not centimetres?)") from None
            raise

    @field_validator("mass_kg")
    @classmethod
    def _mass(cls, value: float) -> float:
        return _in_range(value, MASS_RANGE_KG, "kg", "human mass")

    @field_validator("strength_factors")
    @classmethod
    def _strength(cls, value: dict[str, float]) -> dict[str, float]:
        return _known_groups(value, STRENGTH_FACTOR_RANGE, "strength factor")

    @model_validator(mode="before")
    @classmethod
    def _no_identity(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("name", "patient_name", "birth_date", "date_of_birth", "PatientName", "PatientID"):
                if key in data:
                    raise ValueError(f"field '{key}' identifies a person; use a pseudonymous 'id' only")
        return data

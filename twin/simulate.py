"""One call from a built twin to a frame's activations and spinal loads.

>>> from twin.simulate import load_twin, simulate        # doctest: +SKIP
>>> result = simulate(load_twin("out/"), flexion_deg=30, hand_load_kg=5)   # doctest: +SKIP
>>> result.levels["L4-L5"].compression_N                  # doctest: +SKIP
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from lumbar_twin.errors import InputError
from lumbar_twin.fileio import read_json, sha256_file
from twin.posture import posture
from twin.spec import ModelSpec
from twin.statics import ExternalLoad, Statics, StaticsResult, hand_load

#: The engines' model files in a twin folder; twin.json records their sha256 ("models").
MODEL_FILES = ("model.osim", "model.xml")


@dataclass(frozen=True)
class LoadedTwin:
    """A twin read back from its folder: the spec and what of the patient it records."""

    spec: ModelSpec
    patient: dict
    directory: Path
    #: twin.json's "uncertainty": the morphometry band and the plausible patients' muscle forces.
    uncertainty: dict = field(default_factory=dict)
    #: twin.json's "morphometry_use": per imaged muscle, side and level, how it entered the twin
    #: (measured, estimated, accepted_qc_fail or template; twin.morphometry_use).
    morphometry_use: list = field(default_factory=list)

    def plausible_specs(self) -> dict[str, ModelSpec]:
        """The weakest and strongest plausible patient's specs (only muscle forces differ).

        Raises InputError for a twin built without the band (an older lumbar-twin)."""
        forces = (self.uncertainty or {}).get("max_isometric_force_N")
        if not forces:
            raise InputError(self.directory / "twin.json", "this twin records no measurement uncertainty (built by "
                             "an older lumbar-twin): rebuild it with `lumbar-twin build`, or plan with "
                             "--uncertainty none", field="uncertainty")
        out = {}
        for label, values in forces.items():
            if len(values) != len(self.spec.fascicles):
                raise InputError(self.directory / "twin.json", f"{label}: {len(values)} forces for "
                                 f"{len(self.spec.fascicles)} fascicles", field="uncertainty")
            out[label] = replace(self.spec, fascicles=tuple(replace(f, max_isometric_force_N=float(v))
                                                            for f, v in zip(self.spec.fascicles, values)))
        return out

    @property
    def activation_caps(self) -> dict[str, float]:
        return dict((self.patient.get("limits") or {}).get("activation") or {})


def load_twin(twin_dir: str | Path) -> LoadedTwin:
    twin_dir = Path(twin_dir)
    path = twin_dir / "twin.json"
    if not twin_dir.is_dir():
        raise InputError(twin_dir, "twin folder not found (make one with `lumbar-twin build`)")
    if not path.is_file():
        raise InputError(path, "not found: is this a twin folder made by `lumbar-twin build`?")
    doc = read_json(path)
    if doc.get("schema") != "lumbar-twin/twin@1":
        raise InputError(path, f"unknown schema {doc.get('schema')!r}; expected lumbar-twin/twin@1", field="schema")
    try:
        spec = ModelSpec.from_dict(doc["spec"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(path, f"model specification is incomplete ({exc})", field="spec") from None
    if not spec.lumbar_rhythm or not spec.contacts:
        raise InputError(path, "made by an older lumbar-twin without lumbar rhythm or contacts; "
                               "rebuild it with `lumbar-twin build`", field="spec")
    _check_models(twin_dir, doc.get("models"))
    return LoadedTwin(spec, doc.get("patient", {}), twin_dir, doc.get("uncertainty") or {},
                      doc.get("morphometry_use") or [])


def _check_models(twin_dir: Path, recorded) -> None:
    """The model files must be the ones the build wrote (twin.json "models": {file: sha256})."""
    if not isinstance(recorded, dict) or set(recorded) != set(MODEL_FILES):
        raise InputError(twin_dir / "twin.json", "records no checksums of its model files (made by an older "
                                                 "lumbar-twin); rebuild it with `lumbar-twin build`", field="models")
    for name in MODEL_FILES:
        path = twin_dir / name
        if not path.is_file():
            raise InputError(path, "missing from the twin folder; rebuild the twin with `lumbar-twin build`")
        if sha256_file(path) != recorded[name]:
            raise InputError(path, "is not the model this twin's build wrote (its sha256 differs from twin.json): "
                                   "edited or swapped; rebuild the twin with `lumbar-twin build`")


def simulate(twin: LoadedTwin | ModelSpec, flexion_deg: float = 0.0, lateral_deg: float = 0.0,
             rotation_deg: float = 0.0, hand_load_kg: float = 0.0,
             forces: Sequence[ExternalLoad] = (), statics: Statics | None = None) -> StaticsResult:
    """Activations and intervertebral loads for a global trunk posture and external loads."""
    spec = twin.spec if isinstance(twin, LoadedTwin) else twin
    caps = twin.activation_caps if isinstance(twin, LoadedTwin) else {}
    pose = posture(spec, math.radians(flexion_deg), math.radians(lateral_deg), math.radians(rotation_deg))
    check_pose_in_range(spec, pose, {"flexion": flexion_deg, "lateral": lateral_deg, "rotation": rotation_deg})
    if hand_load_kg < 0:
        raise InputError(None, f"{hand_load_kg} kg: a held mass cannot be negative", field="--hand-load-kg")
    loads = list(forces) + ([hand_load(hand_load_kg)] if hand_load_kg else [])
    known = {c.name for c in spec.contacts}
    for load in loads:
        if load.contact not in known:
            raise InputError(None, f"unknown contact {load.contact!r}; known: {', '.join(sorted(known))}",
                             field="--force")
    solver = statics or Statics(spec, caps)
    return solver.solve(pose, loads)


def check_pose_in_range(spec: ModelSpec, pose: dict[str, float], global_deg: dict[str, float]) -> None:
    for coord in spec.coordinates:
        lo, hi = coord.range_rad
        value = pose.get(coord.name, 0.0)
        if not lo <= value <= hi:
            raise InputError(None, f"{global_deg[coord.kind]:g} deg puts {coord.name} at "
                                   f"{math.degrees(value):.1f} deg, beyond the model range "
                                   f"{math.degrees(lo):.0f}..{math.degrees(hi):.0f} deg", field=f"--{coord.kind}")

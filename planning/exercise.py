"""Exercises: one cycle of global lumbar angles over time, from the library in data/exercises.yaml.

>>> ex = load_exercise("trunk_extension")
>>> ex.cycle_s, ex.angles_deg(3.0)["flexion"]
(6.0, 0.0)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from lumbar_twin import DATA_DIR
from lumbar_twin.errors import InputError
from twin.posture import posture
from twin.simulate import check_pose_in_range
from twin.spec import COORDINATE_KINDS, ModelSpec

LIBRARY = DATA_DIR / "exercises.yaml"


@dataclass(frozen=True)
class Exercise:
    name: str
    description: str
    cycle_s: float
    phases: tuple[float, ...]  # keyframe phases 0..1, increasing, first 0 and last 1
    angles: dict[str, tuple[float, ...]]  # kind -> keyframe angles, deg

    @property
    def is_static(self) -> bool:
        """A held posture: every keyframe the same."""
        return all(len(set(values)) == 1 for values in self.angles.values())

    def angles_deg(self, time_s: float | np.ndarray) -> dict[str, np.ndarray]:
        """Global angles at times in the cycle (wrapped), half-cosine eased between keyframes."""
        phase = np.mod(np.asarray(time_s, float) / self.cycle_s, 1.0)
        k = np.clip(np.searchsorted(self.phases, phase, side="right") - 1, 0, len(self.phases) - 2)
        p0, p1 = np.array(self.phases)[k], np.array(self.phases)[k + 1]
        ease = 0.5 * (1.0 - np.cos(np.pi * (phase - p0) / (p1 - p0)))
        return {kind: np.array(values)[k] + (np.array(values)[k + 1] - np.array(values)[k]) * ease
                for kind, values in self.angles.items()}

    def poses(self, spec: ModelSpec, times_s: np.ndarray) -> list[dict[str, float]]:
        """The twin's pose at each time; refuses angles beyond the model's coordinate ranges."""
        angles = self.angles_deg(times_s)
        poses = []
        for k in range(len(times_s)):
            deg = {kind: float(angles[kind][k]) for kind in COORDINATE_KINDS}
            pose = posture(spec, *(math.radians(deg[kind]) for kind in COORDINATE_KINDS))
            check_pose_in_range(spec, pose, deg)
            poses.append(pose)
        return poses


def exercise_names(library: str | Path = LIBRARY) -> list[str]:
    return list(_read(library))


def load_exercise(name: str, library: str | Path = LIBRARY) -> Exercise:
    entries = _read(library)
    if name not in entries:
        raise InputError(library, f"no exercise {name!r}; known: {', '.join(entries)}", field="exercise")
    entry = entries[name]
    try:
        frames = entry["keyframes"]
        phases = tuple(float(f["phase"]) for f in frames)
        angles = {kind: tuple(float(f.get(kind, 0.0)) for f in frames) for kind in COORDINATE_KINDS}
        cycle = float(entry["cycle_s"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(library, f"exercise {name!r} is malformed ({exc})", field=name) from None
    if not (np.isfinite(phases).all() and np.isfinite(cycle) and all(np.isfinite(v).all() for v in angles.values())):
        raise InputError(library, "phases, angles and cycle_s must be finite numbers (NaN or inf given)", field=name)
    if len(phases) < 2 or phases[0] != 0.0 or phases[-1] != 1.0 or np.any(np.diff(phases) <= 0):
        raise InputError(library, "keyframe phases must rise from 0 to 1", field=name)
    if not cycle > 0:
        raise InputError(library, f"cycle_s must be positive, not {cycle}", field=name)
    if any(values[0] != values[-1] for values in angles.values()):
        raise InputError(library, "a cycle must end where it starts (first and last keyframe differ)", field=name)
    return Exercise(name, " ".join(str(entry.get("description", "")).split()), cycle, phases, angles)


def _read(library: str | Path) -> dict:
    path = Path(library)
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise InputError(path, f"cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise InputError(path, f"not valid YAML ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("exercises"), dict):
        raise InputError(path, "expected a mapping with an 'exercises' section")
    return doc["exercises"]

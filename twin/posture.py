"""Postures: global trunk angles spread over the five levels by the lumbar rhythm.

Global angles are degrees at the command line and radians here. A posture is a pose dict
{coordinate name: rad}, the form both engines take.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

from lumbar_twin.errors import InputError
from twin.spec import COORDINATE_KINDS, LEVELS, ModelSpec, coordinate_name


def posture(spec: ModelSpec, flexion_rad: float = 0.0, lateral_rad: float = 0.0,
            rotation_rad: float = 0.0) -> dict[str, float]:
    """Pose for global trunk angles (pelvis to thorax), shared by the spec's lumbar rhythm.

    >>> from twin.template import load_template
    >>> pose = posture(load_template(), flexion_rad=math.radians(30))
    >>> round(math.degrees(pose["L4_L5_flexion"]), 2)
    5.55
    """
    angles = {"flexion": flexion_rad, "lateral": lateral_rad, "rotation": rotation_rad}
    return {coordinate_name(level, kind): angles[kind] * spec.lumbar_rhythm[kind][level]
            for kind in COORDINATE_KINDS for level in LEVELS}


def explicit_posture(spec: ModelSpec, angles_rad: Mapping[str, float]) -> dict[str, float]:
    """Per-joint angles, checked against the spec's coordinates and ranges."""
    coords = {c.name: c for c in spec.coordinates}
    pose = {name: 0.0 for name in coords}
    for name, value in angles_rad.items():
        if name not in coords:
            raise InputError(None, f"unknown coordinate {name!r}", field="posture")
        lo, hi = coords[name].range_rad
        if not lo <= value <= hi:
            raise InputError(None, f"{math.degrees(value):.1f} deg is outside the model range "
                                   f"{math.degrees(lo):.0f}..{math.degrees(hi):.0f} deg", field=name)
        pose[name] = float(value)
    return pose

"""External loads: a force (and optional moment) at a named contact of the model."""
from __future__ import annotations

from dataclasses import dataclass

GRAVITY_DEFAULT = 9.80665


@dataclass(frozen=True)
class ExternalLoad:
    """A force [N] and moment [N m] at a named contact, in `frame` ('ground' or 'body')."""

    contact: str
    force_N: tuple[float, float, float]
    moment_Nm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    frame: str = "ground"


def hand_load(mass_kg: float, gravity: float = GRAVITY_DEFAULT) -> ExternalLoad:
    """A mass held in both hands in front of the chest: its weight at the `hands` contact."""
    return ExternalLoad("hands", (0.0, -mass_kg * gravity, 0.0))

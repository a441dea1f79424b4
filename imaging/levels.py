"""Disc levels in an image: where each intervertebral disc lies along the slice axis.

From a vertebra label map (vertebral bodies L1..L5, S1 in some convention) the disc between two
labelled vertebrae lies midway between the lower vertebra's top and the upper one's bottom.
Positions are continuous slice indices along axis 2 of the canonical (RAS+) array.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imaging.labels import VERTEBRAE
from imaging.morphometry import LEVELS
from lumbar_twin.errors import InputError


@dataclass(frozen=True)
class Levels:
    """Disc positions (slice index, may be fractional) of the levels found, and the rest missing."""

    disc_slice: dict[str, float]
    source: str

    @property
    def found(self) -> tuple[str, ...]:
        return tuple(lv for lv in LEVELS if lv in self.disc_slice)

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(lv for lv in LEVELS if lv not in self.disc_slice)


def levels_from_vertebrae(vertebrae: np.ndarray, convention: dict[str, int], source: str = "labels") -> Levels:
    """Levels from a vertebra label map already on the image grid (canonical orientation)."""
    known = set(convention.values())
    present = set(np.unique(vertebrae).astype(int)) - {0}
    if not present & known:
        raise InputError(source, f"no vertebra of the convention {convention} in the label map "
                                 f"(values present: {sorted(present)[:10]})")
    extents = {name: (float(slices.min()) - 0.5, float(slices.max()) + 0.5)
               for name, _mask, slices in vertebra_slices(vertebrae, convention)}
    discs = {}
    for level, upper, lower in zip(LEVELS, VERTEBRAE[:5], VERTEBRAE[1:]):
        if upper in extents and lower in extents:
            lower_top, upper_bottom = extents[lower][1], extents[upper][0]
            if upper_bottom < lower_top:  # stored upside down would have been made canonical
                raise InputError(source, f"{upper} lies below {lower}: check the vertebra label convention")
            discs[level] = 0.5 * (lower_top + upper_bottom)
    if not discs:
        raise InputError(source, "the vertebra labels hold no two adjacent lumbar vertebrae, so no disc level")
    return Levels(discs, source)


def vertebra_slices(vertebrae: np.ndarray, convention: dict[str, int]):
    """(name, mask, slice indices) of each labelled vertebra, L1 first; slices holding under
    30 % of the vertebra's largest section (specks, partial volume) are left out."""
    for name in VERTEBRAE:
        value = convention.get(name)
        if value is None:
            continue
        mask = vertebrae == value
        counts = mask.sum(axis=(0, 1))
        if counts.max() == 0:
            continue
        yield name, mask, np.nonzero(counts >= 0.3 * counts.max())[0]

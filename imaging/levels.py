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
    #: Levels whose disc lies in the volume but too near its edge to be measured (missing too).
    at_edge: tuple[str, ...] = ()

    @property
    def found(self) -> tuple[str, ...]:
        return tuple(lv for lv in LEVELS if lv in self.disc_slice)

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(lv for lv in LEVELS if lv not in self.disc_slice)


def levels_from_vertebrae(vertebrae: np.ndarray, convention: dict[str, int], source: str = "labels") -> Levels:
    """Levels from a vertebra label map already on the image grid (canonical orientation).

    The disc between two labelled vertebrae lies midway between the lower one's top and the
    upper one's bottom. Where a steep sacral slope or lordosis tilts them so that axial slices
    cut both (the sacral promontory beside the back of L5), their extents overlap: the disc is
    then where the two sections are equal on the slices they share. An upper vertebra whose
    centre lies below the lower one's is an error (a convention or numbering fault).
    """
    known = set(convention.values())
    present = set(np.unique(vertebrae).astype(int)) - {0}
    if not present & known:
        raise InputError(source, f"no vertebra of the convention {convention} in the label map "
                                 f"(values present: {sorted(present)[:10]})")
    sections, extents = {}, {}
    for name, mask, slices in vertebra_slices(vertebrae, convention):
        sections[name] = mask.sum(axis=(0, 1)).astype(float)
        extents[name] = (float(slices.min()) - 0.5, float(slices.max()) + 0.5)
    discs = {}
    for level, upper, lower in zip(LEVELS, VERTEBRAE[:5], VERTEBRAE[1:]):
        if upper in extents and lower in extents:
            lower_top, upper_bottom = extents[lower][1], extents[upper][0]
            if _centre(sections[upper]) <= _centre(sections[lower]):
                raise InputError(source, f"{upper} lies below {lower}: check the vertebra label convention")
            if upper_bottom >= lower_top:
                discs[level] = 0.5 * (lower_top + upper_bottom)
            else:
                discs[level] = _equal_sections(sections[upper], sections[lower], upper_bottom, lower_top)
    if not discs:
        raise InputError(source, "the vertebra labels hold no two adjacent lumbar vertebrae, so no disc level")
    return Levels(discs, source)


def _centre(section: np.ndarray) -> float:
    """Section-weighted mean slice of one vertebra."""
    return float(np.sum(np.arange(section.size) * section) / section.sum())


def _equal_sections(upper: np.ndarray, lower: np.ndarray, start: float, stop: float) -> float:
    """The slice position, between start and stop, where the upper vertebra's section grows past
    the lower one's (linear between slices)."""
    ks = np.arange(int(np.ceil(start)), int(np.floor(stop)) + 1)
    difference = upper[ks] - lower[ks]
    crossing = np.nonzero((difference[:-1] < 0) & (difference[1:] >= 0))[0]
    if crossing.size == 0:  # no clean crossing: the middle of the shared slices
        return 0.5 * (start + stop)
    i = crossing[0]
    return float(ks[i] + difference[i] / (difference[i] - difference[i + 1]))


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

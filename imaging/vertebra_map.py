"""A vertebra label map in any convention -> the default convention (L1..L5 = 1..5, S1 = 6),
checked, so that levels are never placed over a vertebral body.

What is checked (each fault stops with one line naming the file):
- the map holds vertebrae of the convention at all, and no value covers several vertebrae (a map
  with all vertebrae in one value, such as TotalSegmentator `total_mr`, given as per-vertebra);
- every labelled vertebra lies on the spine's column (TotalSegmentator `total_mr` has iliac
  vessels at 26-29, the `total` task's S1..L3 values);
- the vertebrae are in cranio-caudal order;
- no vertebra of the convention is missing between two labelled ones (L3 absent between L2
  and L4: its levels would be dropped as if out of view);
- no gap between two consecutive labelled vertebrae is as long as a vertebral body (an
  unlabelled vertebra between them, e.g. a transitional vertebra between L5 and S1); a sixth
  lumbar vertebra labelled as such stops too: the model has five lumbar levels;
- an anchor (`lowest_disc`) agrees with the labels.

A map with all vertebrae in one value is numbered from its discs: the lowest disc is L5-S1 when
the sacrum is labelled right below it, otherwise the user's anchor names it.

Sizes used (adult lumbar spine): a vertebral body is 25-30 mm high and a disc 8-14 mm
(Zhou et al. 2000, Eur Spine J 9:242, Table 2; Pfirrmann et al. 2006, Spine 31:E1142);
a vertebra's axial extent, tilted by lordosis and with its posterior elements, stays under
about 50 mm.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, stats

from imaging.conventions import VertebraConvention, vertebra_convention
from imaging.labels import DEFAULT_VERTEBRA_LABELS, VERTEBRAE
from imaging.morphometry import LEVELS
from imaging.vertebral_body import vertebral_bodies
from lumbar_twin.errors import InputError

#: One label value spanning more than this along the spine holds several vertebrae.
MAX_VERTEBRA_EXTENT_MM = 50.0
#: A labelled vertebra whose centre lies further than this to the side of the column is not one.
MAX_OFF_COLUMN_MM = 20.0
#: A gap between consecutive labelled vertebrae this share of the median vertebra's extent or
#: more holds an unlabelled vertebra (a disc is a third to half of a body's height).
GAP_SHARE = 0.8


@dataclass(frozen=True)
class NumberedVertebrae:
    labels: np.ndarray  # default convention, canonical grid
    how: str  # how the levels were numbered, for provenance
    #: Disc positions (slice index) where the map labels the discs themselves; else None and the
    #: levels come from the vertebrae (imaging.levels.levels_from_vertebrae).
    disc_slice: dict[str, float] | None = None


def to_default_convention(vertebrae: np.ndarray, convention: VertebraConvention, spacing_mm,
                          source: str, lowest_disc: str | None = None) -> NumberedVertebrae:
    """`vertebrae` (canonical grid, any integer values) in `convention` -> default convention,
    checked, then cut to the vertebral bodies (imaging.vertebral_body: a whole-vertebra map
    loses its posterior elements and the sacrum its alae)."""
    numbered = _numbered(vertebrae, convention, spacing_mm, source, lowest_disc)
    bodies = vertebral_bodies(numbered.labels, DEFAULT_VERTEBRA_LABELS, spacing_mm)
    labelled = int(np.count_nonzero(numbered.labels))
    dropped = labelled - int(np.count_nonzero(bodies))
    if not dropped:
        return numbered
    return NumberedVertebrae(bodies, f"{numbered.how}; vertebral bodies kept ({dropped} of {labelled} labelled voxels "
                                     "left out: posterior elements, sacral alae, sacrum below S1, corner tips)",
                             numbered.disc_slice)


def _numbered(vertebrae: np.ndarray, convention: VertebraConvention, spacing_mm, source: str,
              lowest_disc: str | None) -> NumberedVertebrae:
    values = np.rint(vertebrae).astype(np.int64)
    if convention.ignore_from is not None:
        values[values >= convention.ignore_from] = 0
    if convention.all_vertebrae is not None:
        return _number_from_discs(values, convention, spacing_mm, source, lowest_disc)
    present = sorted(set(np.unique(values).tolist()) - {0})
    named = {name: value for name, value in convention.values.items() if value in present}
    if not named:
        raise InputError(source, f"no vertebra of the convention '{convention.name}' ({_listing(convention.values)}) "
                                 f"in the label map{_suggestion(present, convention.name)}; values present: "
                                 f"{_describe(values, present, spacing_mm)}")
    _check_extents(values, named, spacing_mm, source, convention.name)
    _check_column(values, named, spacing_mm, source, convention.name)
    if "L6" in named:
        raise InputError(source, f"six lumbar vertebrae (L6 labelled, value {named['L6']}): a transitional vertebra; "
                                 "the model has five lumbar levels, so the levels cannot be matched one to one "
                                 "(relabel the map with the lumbosacral junction as L5-S1 if that is the anatomy)")
    ordered = [name for name in VERTEBRAE if name in named]
    _check_order(values, named, ordered, source)
    _check_unlabelled_between(values, named, ordered, convention, source)
    _check_gaps(values, named, ordered, spacing_mm, source)
    out = np.zeros(values.shape, np.uint8)
    for name in ordered:
        out[values == named[name]] = DEFAULT_VERTEBRA_LABELS[name]
    if lowest_disc is not None:
        pairs = [(LEVELS[i], up, lo) for i, (up, lo) in enumerate(zip(VERTEBRAE[:5], VERTEBRAE[1:]))
                 if up in named and lo in named]
        lowest = pairs[-1][0] if pairs else None
        if lowest != lowest_disc:
            raise InputError(source, f"the anchor --lowest-disc {lowest_disc} contradicts the vertebra labels, "
                                     f"whose lowest disc is {lowest or 'none'}")
    return NumberedVertebrae(out, f"vertebra label map ({convention.name} convention)")


def _number_from_discs(values, convention, spacing_mm, source, lowest_disc) -> NumberedVertebrae:
    """All vertebrae in one value: part them at the labelled discs, number the discs from the
    sacrum right below the lowest, or from the anchor."""
    sz = spacing_mm[2]
    bone = values == convention.all_vertebrae
    if not bone.any():
        raise InputError(source, f"no voxel of value {convention.all_vertebrae} (all vertebrae, convention "
                                 f"'{convention.name}') in the label map")
    if convention.discs is None or not np.any(values == convention.discs):
        raise InputError(source, f"all vertebrae are one value ({convention.all_vertebrae}) and no discs are "
                                 "labelled: cannot tell the vertebrae apart")
    discs, count = ndimage.label(values == convention.discs)
    sizes = ndimage.sum(np.ones_like(discs), discs, range(1, count + 1))
    centres = sorted(float(ndimage.center_of_mass(discs == i + 1)[2]) for i in range(count)
                     if sizes[i] >= 0.2 * sizes.max())  # specks are not discs
    sacrum_value = convention.values.get("S1")
    sacrum = values == sacrum_value if sacrum_value is not None else np.zeros_like(bone)
    how = f"vertebra label map, all vertebrae in one value ({convention.name}), parted at the labelled discs"
    if sacrum.any():
        sacrum_top = float(np.nonzero(sacrum.any(axis=(0, 1)))[0].max())
        below = centres[0] - sacrum_top
        if below * sz > 25.0:  # the sacrum lies right below L5-S1; further down, a disc is missing
            raise InputError(source, f"the lowest labelled disc lies {below * sz:.0f} mm above the sacrum: an unlabelled "
                                     "disc or vertebra between them (give --lowest-disc)")
        found_lowest = "L5-S1"
        if lowest_disc is not None and lowest_disc != found_lowest:
            raise InputError(source, f"the anchor --lowest-disc {lowest_disc} contradicts the labels: the sacrum lies "
                                     "right below the lowest disc, which is L5-S1")
        how += ", numbered from the sacrum"
    elif lowest_disc is None:
        raise InputError(source, f"all vertebrae are one value ({convention.all_vertebrae}) and the sacrum is not in "
                                 f"the map: the {len(centres)} disc(s) cannot be numbered; give --lowest-disc "
                                 "(e.g. --lowest-disc L4-L5)")
    else:
        found_lowest = lowest_disc
        how += f", numbered from the user's anchor (lowest disc {lowest_disc})"
    start = LEVELS.index(found_lowest)
    out = np.zeros(values.shape, np.uint8)
    planes = [-np.inf] + centres + [np.inf]
    z = np.arange(values.shape[2])
    for j in range(len(planes) - 1):
        # part j lies above disc j-1 and below disc j (disc 0 the lowest, LEVELS[start]): the
        # lower vertebra of LEVELS[start] for j = 0, then one vertebra up for each disc
        index = start + 1 - j
        if index < 0:
            break  # above L1: thoracic
        slab = (z > planes[j]) & (z <= planes[j + 1])
        out[bone & slab[None, None, :]] = DEFAULT_VERTEBRA_LABELS[VERTEBRAE[index]]
    if sacrum.any():
        out[sacrum] = DEFAULT_VERTEBRA_LABELS["S1"]
    disc_slice = {LEVELS[start - i]: c for i, c in enumerate(centres) if start - i >= 0}
    return NumberedVertebrae(out, how, disc_slice)


def _extent_mm(mask: np.ndarray, sz: float) -> float:
    """Extent along the spine of the slices holding at least 30 % of the label's largest section:
    a thick slice through an endplate or a facet adds a sliver, not a vertebra (whole phantom
    vertebrae on 5-6 mm slices span 44-66 mm in all, 20-40 mm so)."""
    counts = mask.sum(axis=(0, 1))
    slices = np.nonzero(counts >= 0.3 * counts.max())[0] if counts.any() else counts[:0]
    return float((slices.max() - slices.min() + 1) * sz) if slices.size else 0.0


def _check_extents(values, named, spacing_mm, source, convention_name) -> None:
    for name, value in named.items():
        extent = _extent_mm(values == value, spacing_mm[2])
        if extent > MAX_VERTEBRA_EXTENT_MM:
            raise InputError(source, f"value {value} ({name} in the '{convention_name}' convention) spans {extent:.0f} mm "
                                     "along the spine, as several vertebrae would: a map with all vertebrae in one value "
                                     "(e.g. TotalSegmentator total_mr: --vertebra-labels totalsegmentator-total-mr)?")


def _check_column(values, named, spacing_mm, source, convention_name) -> None:
    """Each vertebra's centre near the column's line in the left-right direction: a robust
    (Theil-Sen) line of the centres' left-right position against height, so that a tilted slab
    or a scoliotic curve is followed; the anterior-posterior position is not used (lordosis moves
    the mid-lumbar bodies 20-30 mm forward of the L1-S1 line)."""
    if len(named) < 3:
        return
    centres = {name: np.array(ndimage.center_of_mass(values == value)) * np.array(spacing_mm)
               for name, value in named.items()}
    x = np.array([c[0] for c in centres.values()])
    z = np.array([c[2] for c in centres.values()])
    slope, intercept, _, _ = stats.theilslopes(x, z)
    for name, centre in centres.items():
        off = float(abs(centre[0] - (intercept + slope * centre[2])))
        if off > MAX_OFF_COLUMN_MM:
            raise InputError(source, f"value {named[name]} ({name} in the '{convention_name}' convention) lies {off:.0f} mm "
                                     "beside the spine's column: not a vertebra (a map of another convention? "
                                     "TotalSegmentator total_mr has iliac vessels at 26-29)")


def _check_order(values, named, ordered, source) -> None:
    centres = {name: float(ndimage.center_of_mass(values == named[name])[2]) for name in ordered}
    by_height = sorted(ordered, key=lambda n: -centres[n])
    if by_height != ordered:
        listing = ", ".join(f"{n} (value {named[n]})" for n in by_height)
        raise InputError(source, f"vertebra labels out of cranio-caudal order; from the top the map holds {listing}")


def _check_unlabelled_between(values, named, ordered, convention, source) -> None:
    """A vertebra of the convention missing between two labelled ones (the tool lost it, or it
    holds a value the convention does not have): its two levels would be dropped as "not in the
    image" although they are. Values present that the convention does not name are listed."""
    between = [name for name in VERTEBRAE[VERTEBRAE.index(ordered[0]):VERTEBRAE.index(ordered[-1]) + 1]
               if name not in named]
    if not between:
        return
    known = set(convention.values.values())
    unknown = sorted(set(np.unique(values).tolist()) - known - {0})
    hint = (f"; the map also holds values the convention '{convention.name}' does not name: "
            f"{', '.join(str(v) for v in unknown[:8])}" if unknown else "")
    raise InputError(source, f"{', '.join(between)} not labelled between {ordered[0]} and {ordered[-1]} "
                             f"(convention '{convention.name}': {_listing(convention.values)}): the levels next "
                             f"to it cannot be placed{hint}")


def _check_gaps(values, named, ordered, spacing_mm, source) -> None:
    sz = spacing_mm[2]
    extents = {}
    for name in ordered:
        slices = np.nonzero((values == named[name]).any(axis=(0, 1)))[0]
        extents[name] = (slices.min(), slices.max())
    bodies = [(hi - lo + 1) * sz for name, (lo, hi) in extents.items() if name != "S1"]
    if not bodies:
        return
    typical = float(np.median(bodies))
    for upper, lower in zip(ordered[:-1], ordered[1:]):
        if VERTEBRAE.index(lower) != VERTEBRAE.index(upper) + 1:
            continue  # a vertebra not labelled by name: its levels are missing, not stretched
        gap = (extents[upper][0] - extents[lower][1] - 1) * sz
        if gap >= GAP_SHARE * typical:
            raise InputError(source, f"between {upper} and {lower} lies a {gap:.0f} mm gap, as long as a vertebral body "
                                     f"(about {typical:.0f} mm here): an unlabelled vertebra between them "
                                     "(a transitional vertebra?); the level would be stretched over it")


def _suggestion(present: list[int], given: str) -> str:
    """', it looks like <convention>' for another built-in convention the values fit: one with all
    vertebrae in one value first (its values are specific), else one with most of its values."""
    from imaging.conventions import vertebra_conventions

    others = [vertebra_convention(name) for name in vertebra_conventions() if name != given]
    for other in sorted(others, key=lambda c: c.all_vertebrae is None):
        if other.all_vertebrae is not None:
            fits = other.all_vertebrae in present and (other.discs is None or other.discs in present)
        else:
            fits = sum(v in present for v in other.values.values()) >= 0.6 * len(other.values)
        if fits:
            return f" (it looks like --vertebra-labels {other.name}: {other.source.split(':')[0]})"
    return ""


def _listing(values: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def _describe(values: np.ndarray, present: list[int], spacing_mm) -> str:
    parts = []
    for value in present[:8]:
        parts.append(f"{value} ({_extent_mm(values == value, spacing_mm[2]):.0f} mm along the spine)")
    more = f" and {len(present) - 8} more" if len(present) > 8 else ""
    return ", ".join(parts) + more

"""Anatomical plausibility of a measured morphometry: the warnings that tell a user to look at
qc.png before trusting a row.

A muscle far below or above the healthy norm at its level, or one side several times the
other, is more often a segmentation failure (a seed lost, a muscle absorbed by its neighbour,
a leak into the viscera) than anatomy: the phantoms' strongest one-sided atrophy leaves the
weak side at about half the other. Norms: the template's reference morphometry
(data/lumbar_template.yaml, with its sources). The checks warn; they do not stop the run.
"""
from __future__ import annotations

from imaging.morphometry import Morphometry, healthy_csa_mm2

#: Share of the healthy norm below which, or multiple above which, a section is suspect. Small
#: sections (a norm under SMALL_NORM_MM2: quadratus lumborum at L5-S1, multifidus at L1-L2)
#: are absent in some people and are not called low.
LOW_SHARE, HIGH_MULTIPLE, SMALL_NORM_MM2 = 0.25, 3.0, 400.0
#: Left / right ratio beyond which (either way) a level is suspect.
SIDE_RATIO = 3.0
#: The built-in segmenter takes muscle up to this fat fraction (imaging.segment); above it a
#: muscle is largely fat and its outline is a guess.
FATTY = 0.6


def suspect_rows(morphometry: Morphometry) -> list[str]:
    """One line per suspect row, naming muscle, side, level and why."""
    out = []
    rows = {(m.muscle, m.side, m.level): m for m in morphometry.muscles}
    for (muscle, side, level), m in rows.items():
        norm = healthy_csa_mm2().get(muscle, {}).get(level)
        where = f"{muscle} {side} at {level}"
        if norm and norm >= SMALL_NORM_MM2 and m.csa_mm2 < LOW_SHARE * norm:
            out.append(f"{where}: {m.csa_mm2:.0f} mm^2, under {LOW_SHARE:.0%} of the healthy "
                       f"{norm:.0f} mm^2 (missing or cut short?)")
        elif norm and m.csa_mm2 > HIGH_MULTIPLE * norm:
            out.append(f"{where}: {m.csa_mm2:.0f} mm^2, over {HIGH_MULTIPLE:g} x the healthy "
                       f"{norm:.0f} mm^2 (leaked into a neighbour?)")
        if m.csa_mm2 > 0 and m.fat_fraction > FATTY:
            out.append(f"{where}: fat fraction {m.fat_fraction:.2f}, beyond what the outline can be "
                       f"traced at ({FATTY:g})")
        other = rows.get((muscle, "right", level)) if side == "left" else None
        if other is not None and min(m.csa_mm2, other.csa_mm2) * SIDE_RATIO < max(m.csa_mm2, other.csa_mm2):
            out.append(f"{muscle} at {level}: left {m.csa_mm2:.0f} and right {other.csa_mm2:.0f} mm^2, more "
                       f"than {SIDE_RATIO:g} x apart")
    return out

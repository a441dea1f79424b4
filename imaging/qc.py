"""The QC picture: labels over an axial slice at each disc level, and CSA and fat fraction
per muscle as bars, so a reader checks the segmentation by eye."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure  # no pyplot: drawing a file leaves the user's backend alone

from imaging.labels import LABEL_NAMES, ROW_LABELS
from imaging.levels import Levels
from imaging.morphometry import ROW_MUSCLES, Morphometry

#: A panel title's line, in characters at font size 8: three panels side by side hold about
#: 45 each before a line runs into its neighbour's (the real scan's "warn: quadratus lumborum
#: L, quadratus lumborum R, multifidus R" did).
TITLE_CHARS = 40

# One hue per muscle (left lighter, right darker), colour-blind safe (Dark2-like).
_HUES = {"psoas": (0.85, 0.37, 0.01), "quadratus_lumborum": (0.46, 0.44, 0.70),
         "erector_spinae": (0.11, 0.62, 0.47), "multifidus": (0.91, 0.16, 0.54),
         "autochthon": (0.40, 0.65, 0.12), "iliopsoas": (0.90, 0.67, 0.01)}


def draw_qc(water: np.ndarray, labels: np.ndarray, levels: Levels, morphometry: Morphometry,
            spacing_mm, path: str | Path, title: str = "") -> None:
    found = levels.found
    fig = Figure(figsize=(3.2 * max(len(found), 3), 7.5))
    grid = fig.add_gridspec(2, max(len(found), 3), height_ratios=[1.25, 1])
    colours = [(0, 0, 0, 0)] + [(*_shade(LABEL_NAMES[v]), 0.55) for v in range(1, len(LABEL_NAMES) + 1)]
    cmap = ListedColormap(colours)
    sx, sy, _ = spacing_mm
    box = _label_box(labels, spacing_mm)
    for i, level in enumerate(found):
        k = int(round(levels.disc_slice[level]))
        k = min(max(k, 0), water.shape[2] - 1)
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(water[box + (k,)].T, origin="lower", cmap="gray", aspect=sy / sx)
        ax.imshow(labels[box + (k,)].T, origin="lower", cmap=cmap, vmin=0, vmax=len(LABEL_NAMES), aspect=sy / sx,
                  interpolation="nearest")
        # one line a status: a level's title must not run over its neighbour's
        ax.set_title(f"{level} (slice {k}), QC\n{_level_status(morphometry, level)}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("patient right \u2192", fontsize=7)
    x = np.arange(len(found))
    width = 0.1
    for j, (metric, unit) in enumerate((("csa_mm2", "CSA [mm\u00b2]"), ("fat_fraction", "fat fraction [%]"))):
        ax = fig.add_subplot(grid[1, :2] if j == 0 else grid[1, 2:])
        shown = [key for key in ROW_LABELS if any(morphometry.get(*key, level) for level in found)]
        for n, (muscle, side) in enumerate(shown):
            heights = []
            for level in found:
                row = morphometry.get(muscle, side, level)
                value = getattr(row, metric) if row else 0.0
                heights.append(value * (100 if metric == "fat_fraction" else 1))
            ax.bar(x + (n - (len(shown) - 1) / 2) * width, heights, width, color=_shade(f"{muscle}_{side}"),
                   label=_short_name(muscle, side))
        ax.set_xticks(x, found)
        ax.set_ylabel(unit)
        ax.grid(axis="y", alpha=0.3)
        if j == 0 and shown:  # below the axes: inside, it covered the tallest bars
            ax.legend(fontsize=7, ncol=4, loc="upper left", bbox_to_anchor=(0.0, -0.12))
    missing = f"; missing levels: {', '.join(levels.missing)}" if levels.missing else ""
    fig.suptitle((title or "segmentation QC") + missing, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


#: Margin around the muscles' bounding box in the slice panels: enough to show the vertebral
#: body, the skin behind the back muscles and the tissue a leak would reach.
PANEL_MARGIN_MM = 30.0


def _label_box(labels: np.ndarray, spacing_mm) -> tuple[slice, slice]:
    """In-plane box of every label over all slices, widened by PANEL_MARGIN_MM (whole slices
    when nothing is labelled): the muscles fill the panel instead of a few dozen pixels of it."""
    if not labels.any():
        return slice(None), slice(None)
    box = []
    for axis, other in ((0, (1, 2)), (1, (0, 2))):
        present = np.nonzero(labels.any(axis=other))[0]
        pad = int(np.ceil(PANEL_MARGIN_MM / spacing_mm[axis]))
        box.append(slice(max(0, int(present[0]) - pad), min(labels.shape[axis], int(present[-1]) + pad + 1)))
    return box[0], box[1]


def _level_status(morphometry: Morphometry, level: str) -> str:
    """'pass', or the rows that did not pass, e.g. 'fail: psoas L; warn: multifidus R'. A level
    with no row is 'fail: no muscle found', and a muscle measured at another level but not at
    this one is listed as missing: an empty panel must not read as a pass."""
    here = {(m.muscle, m.side) for m in morphometry.muscles if m.level == level}
    if not here:
        return "fail: no muscle found"
    elsewhere = {(m.muscle, m.side) for m in morphometry.muscles} - here
    listed = [("missing", sorted(elsewhere), "muscles")]
    listed += [(status, [(m.muscle, m.side) for m in morphometry.muscles if m.level == level and m.qc == status],
                "rows") for status in ("fail", "warn")]
    parts = []
    for kind, keys, noun in listed:
        rows = [_short_name(muscle, side) for muscle, side in keys]
        if rows:  # more than three, or a long line, would run over the neighbouring panel's title
            text = f"{kind}: {', '.join(rows)}" if len(rows) <= 3 else f"{kind}: {len(rows)} {noun}"
            parts.append(textwrap.fill(text, TITLE_CHARS, break_long_words=False))
    return "\n".join(parts) or "pass"


def _short_name(muscle: str, side: str) -> str:
    """'quadratus lumborum L': a row's name in a panel title or legend."""
    return f"{muscle.replace('_', ' ')} {side[0].upper()}"


def _shade(name: str):
    muscle = next(m for m in ROW_MUSCLES if name.startswith(m))
    base = np.array(_HUES[muscle])
    return tuple(base + (1 - base) * 0.45) if name.endswith("left") else tuple(base * 0.8)

"""A picture of a twin: the spine and every muscle path, from the side and from behind, and
the patient's muscle strength per group and side against the template.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # no pyplot: drawing a file leaves the user's backend alone
from matplotlib.lines import Line2D
from matplotlib.patches import Polygon

from twin.kinematics import body_transforms, path_points_world
from twin.spec import GROUP_COLORS, GROUPS, ModelSpec

# Vertebral body outline (depth x height) drawn in each lumbar frame; template-size, scaled.
_BODY_HALF_DEPTH_M, _BODY_HALF_HEIGHT_M, _BODY_HALF_WIDTH_M = 0.0175, 0.013, 0.023


def draw_twin(spec: ModelSpec, path: str | Path, template: ModelSpec | None = None, title: str = "") -> None:
    """Write a PNG of `spec`; with `template`, add bars of force relative to it."""
    transforms = body_transforms(spec)
    scale = spec.height_m / 1.75
    ncols = 3 if template is not None else 2
    fig = Figure(figsize=(4.6 * ncols, 6.4))
    axes = fig.subplots(1, ncols, gridspec_kw={"width_ratios": [0.8, 0.8, 1.3][:ncols]})
    # Seen from behind, the patient's right (+z) is on the viewer's right: no axis flip.
    views = ((axes[0], 0, "sagittal (right side view)", "anterior x [m]"),
             (axes[1], 2, "frontal (view from behind)", "right z [m]"))
    for ax, horizontal, name, xlabel in views:
        for f in spec.fascicles:
            pts = path_points_world(f, transforms)
            ax.plot(pts[:, horizontal], pts[:, 1], "-", lw=0.9, color=GROUP_COLORS[f.group], alpha=0.85)
            ax.plot(pts[:, horizontal], pts[:, 1], ".", ms=2.5, color="0.35")  # attachments and vias
        for body, frame in transforms.items():
            if not body.startswith("L"):
                continue
            centre = frame[:3, :3] @ (np.array([0.003, 0.024, 0.0]) * scale) + frame[:3, 3]
            half_w = (_BODY_HALF_DEPTH_M if horizontal == 0 else _BODY_HALF_WIDTH_M) * scale
            corners = np.array([[-half_w, -_BODY_HALF_HEIGHT_M * scale], [half_w, -_BODY_HALF_HEIGHT_M * scale],
                                [half_w, _BODY_HALF_HEIGHT_M * scale], [-half_w, _BODY_HALF_HEIGHT_M * scale]])
            rot = frame[:3, :3]
            axis_h, axis_v = rot[[horizontal, 1]][:, [horizontal, 1]].T  # in-plane frame axes
            outline = centre[[horizontal, 1]] + corners[:, :1] * axis_h + corners[:, 1:] * axis_v
            ax.add_patch(Polygon(outline, closed=True, fc="#e8e2d0", ec="#6b6450", lw=0.8, zorder=3))
            ax.annotate(body, centre[[horizontal, 1]], fontsize=7, ha="center", va="center", zorder=4)
        for joint in spec.joints:
            if joint.coordinates:
                p = transforms[joint.child][:3, 3]
                ax.plot(p[horizontal], p[1], "k+", ms=5, zorder=5)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("superior y [m]")
        ax.set_aspect("equal")
        ax.grid(alpha=0.2)
    handles = [Line2D([], [], color=GROUP_COLORS[g], lw=2, label=g.replace("_", " ")) for g in GROUPS]
    fig.legend(handles=handles, loc="lower center", ncol=len(GROUPS), fontsize=8, frameon=False)

    if template is not None:
        _strength_bars(axes[2], spec, template)
    fig.suptitle(title or spec.name, fontsize=12)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=110)


def _strength_bars(ax, spec: ModelSpec, template: ModelSpec) -> None:
    """Per group and side: total maximum isometric force as % of the template's."""
    y = np.arange(len(GROUPS))
    for offset, side, hatch in ((-0.2, "left", ""), (0.2, "right", "//")):
        pct = []
        for group in GROUPS:
            mine = sum(f.max_isometric_force_N for f in spec.fascicles if (f.group, f.side) == (group, side))
            ref = sum(f.max_isometric_force_N for f in template.fascicles if (f.group, f.side) == (group, side))
            pct.append(100.0 * mine / ref)
        ax.barh(y + offset, pct, height=0.38, color=[GROUP_COLORS[g] for g in GROUPS], hatch=hatch,
                edgecolor="k", lw=0.5, label=side)
        for yi, p in zip(y + offset, pct):
            ax.text(p + 1, yi, f"{p:.0f}", va="center", fontsize=7)
    ax.axvline(100, color="k", lw=0.8, ls="--")
    ax.set_yticks(y, [g.replace("_", " ") for g in GROUPS], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("maximum isometric force, % of template")
    ax.set_title("strength per group (left plain, right hatched)", fontsize=10)
    ax.grid(axis="x", alpha=0.2)

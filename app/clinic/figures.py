"""Plotly figures for the page (the matplotlib ones in planning/figures.py stay the CLI's)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from twin.spec import GROUPS


def loads_figure(evaluation, plan) -> go.Figure:
    """Compression per level over the cycle, each level's limit as a dashed line (N)."""
    fig = go.Figure()
    for k, level in enumerate(plan.limits.compression_N):
        fig.add_trace(go.Scatter(x=evaluation.times_s, y=evaluation.compression_N[:, k], name=level, mode="lines"))
    caps = plan.limits.compression_N
    for cap in sorted(set(caps.values())):  # one line per distinct limit, naming its levels
        levels = ", ".join(lv for lv, c in caps.items() if c == cap)
        fig.add_hline(y=cap, line_dash="dash", line_color="red", annotation_text=f"limit {cap:.0f} N ({levels})")
    fig.update_layout(title="compression per level over the cycle", xaxis_title="time (s)",
                      yaxis_title="compression (N)", height=340, margin=dict(l=50, r=20, t=40, b=40))
    return fig


def activation_figure(evaluation) -> go.Figure:
    """Each group's cycle-mean activation (mean of both sides) and its peak fascicle activation."""
    mean = evaluation.group_activation.mean(axis=(0, 2))
    peak = evaluation.group_peak.max(axis=0)
    fig = go.Figure([go.Bar(x=list(evaluation.groups), y=mean, name="group mean"),
                     go.Bar(x=list(evaluation.groups), y=peak, name="peak fascicle")])
    fig.update_layout(title="predicted activation", yaxis_title="activation (0-1)", height=300,
                      yaxis_range=[0, 1.05], margin=dict(l=50, r=20, t=40, b=40))
    return fig


def strength_figure(spec, template) -> go.Figure:
    """Maximum isometric force per group, twin against the template (N, both sides summed)."""
    def per_group(s):
        total = {g: 0.0 for g in GROUPS}
        for f in s.fascicles:
            total[f.group] = total.get(f.group, 0.0) + f.max_isometric_force_N
        return total
    twin, tmpl = per_group(spec), per_group(template)
    groups = [g for g in GROUPS if tmpl.get(g)]
    fig = go.Figure([go.Bar(x=groups, y=[tmpl[g] for g in groups], name="template"),
                     go.Bar(x=groups, y=[twin[g] for g in groups], name="this twin")])
    fig.update_layout(title="strength per group (max isometric force, N)", height=300,
                      margin=dict(l=50, r=20, t=40, b=40))
    return fig


def closest_limit(evaluation, plan) -> str:
    """The limit the peak comes nearest to, as 'compression L5-S1: 1872 N of 2500 N (75 %)'."""
    best = ("", 0.0, 0.0, 0.0)
    for kind, values in (("compression", evaluation.compression_N), ("AP shear", np.abs(evaluation.ap_shear_N))):
        caps = plan.limits.compression_N if kind == "compression" else plan.limits.ap_shear_N
        for k, level in enumerate(caps):
            peak = float(values[:, k].max())
            if peak / caps[level] > best[1]:
                best = (f"{kind} {level}", peak / caps[level], peak, caps[level])
    for group, cap in plan.limits.activation.items():
        peak = float(evaluation.group_peak[:, evaluation.groups.index(group)].max())
        if peak / cap > best[1]:
            best = (f"{group} activation cap", peak / cap, peak, cap)
    name, ratio, peak, cap = best
    unit = "" if "activation" in name else " N"
    digits = ".2f" if "activation" in name else ".0f"
    return f"closest limit: {name}: {peak:{digits}}{unit} of {cap:{digits}}{unit} ({ratio:.0%})"


def compare_figure(profiles: dict) -> go.Figure:
    """Force magnitude over the cycle (% of cycle, N) of each named profile.json, overlaid."""
    from planning.export import read_profile

    fig = go.Figure()
    for name, path in profiles.items():
        doc, times, forces = read_profile(path)
        fig.add_trace(go.Scatter(x=100 * times / float(doc["cycle_s"]), y=np.linalg.norm(forces, axis=1),
                                 name=f"{name} ({doc.get('exercise', '')})", mode="lines"))
    fig.update_layout(title="force at the pad over the cycle", xaxis_title="% of the cycle",
                      yaxis_title="force (N)", height=300, margin=dict(l=50, r=20, t=40, b=40))
    return fig

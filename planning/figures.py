"""Pictures of a plan: the cycle (force, activations against targets, loads against limits),
the optimisation history and the Pareto front."""
from __future__ import annotations

from pathlib import Path

# pyplot without choosing a backend: notebooks keep inline plots; headless runs fall back to Agg.
import matplotlib.pyplot as plt
import numpy as np

from planning.evaluate import Evaluation, target_window
from planning.plan import Plan
from twin.spec import GROUP_COLORS, LEVELS, SIDES

LEVEL_COLORS = dict(zip(LEVELS, plt.get_cmap("viridis")(np.linspace(0.0, 0.9, len(LEVELS)))))


def cycle_figure(evaluation: Evaluation, forces_N: np.ndarray, plan: Plan, path: str | Path | None = None,
                 title: str = "") -> plt.Figure:
    """Force at the pad, targeted and capped groups' mean activation per side (dashed: target)
    with each group's most active fascicle (thin; dash-dot: its cap), and compression and AP
    shear at each level (dashed: limits) over one cycle."""
    t = evaluation.times_s
    fig, axes = plt.subplots(4, 1, figsize=(8, 10), sharex=True, constrained_layout=True)
    ax = axes[0]
    ax.plot(t, np.linalg.norm(forces_N, axis=1), color="k", label="|F|")
    for k, name in enumerate(("fx (anterior)", "fy (superior)", "fz (right)")):
        ax.plot(t, forces_N[:, k], lw=0.8, label=name)
    ax.axhline(plan.device.max_force_N, color="r", ls="--", lw=0.8, label="device max")
    ax.set_ylabel(f"force at {plan.contact} [N]")
    ax.legend(fontsize=7, ncol=5, loc="upper right")

    ax = axes[1]
    shown = list(dict.fromkeys([tg.group for tg in plan.targets] + list(plan.limits.activation)))
    for group in shown:
        color = GROUP_COLORS.get(group)
        for side, style in zip(SIDES, ("-", ":")):
            ax.plot(t, evaluation.activation(group, side), style, color=color, label=f"{group} {side}")
    for target in plan.targets:
        inside = target_window(t, len(t) / plan.device.rate_hz, target)  # t: one cycle of device samples
        ax.plot(t[inside], np.full(inside.sum(), target.value), "--", color=GROUP_COLORS.get(target.group), lw=1.5)
    for group in shown:  # beside each group's mean, its most active fascicle (what a cap bounds)
        ax.plot(t, evaluation.group_peak[:, evaluation.groups.index(group)], "-", color=GROUP_COLORS.get(group),
                lw=0.6, alpha=0.6, label=f"{group} peak fascicle")
    for group, cap in plan.limits.activation.items():
        ax.axhline(cap, color=GROUP_COLORS.get(group), ls="-.", lw=0.8, label=f"{group} cap (each fascicle)")
    ax.set_ylabel("activation (0..1)")
    ax.legend(fontsize=7, ncol=2, loc="upper right")

    for ax, values, limits, label in ((axes[2], evaluation.compression_N, plan.limits.compression_N, "compression [N]"),
                                      (axes[3], np.abs(evaluation.ap_shear_N), plan.limits.ap_shear_N, "|AP shear| [N]")):
        for i, level in enumerate(LEVELS):
            ax.plot(t, values[:, i], color=LEVEL_COLORS[level], label=level)
        for cap in sorted(set(limits.values())):
            ax.axhline(cap, color="r", ls="--", lw=1.0)
        ax.set_ylabel(label)
        ax.set_ylim(0, max(max(limits.values()) * 1.08, values.max() * 1.08))
        ax.legend(fontsize=7, ncol=5, loc="lower right")
    axes[-1].set_xlabel("time in the cycle [s]")
    fig.suptitle(title or f"{plan.exercise}: force, activations and spinal loads over one cycle", fontsize=10)
    return _save(fig, path)


def history_figure(search, plan: Plan, path: str | Path | None = None) -> plt.Figure:
    """Target error per trial (feasible dots, infeasible crosses) and the best feasible so far."""
    trials = sorted(search.candidates, key=lambda c: c.number)
    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    numbers = np.array([c.number for c in trials])
    errors = np.array([c.error for c in trials])
    feasible = np.array([c.feasible for c in trials])
    ax.scatter(numbers[feasible], errors[feasible], s=12, color="tab:blue", label="feasible")
    ax.scatter(numbers[~feasible], errors[~feasible], s=14, marker="x", color="tab:red", label="breaks a limit")
    best = np.minimum.accumulate(np.where(feasible, errors, np.inf))
    ax.step(numbers, best, where="post", color="k", label="best feasible so far")
    ax.set_yscale("log")
    ax.set_xlabel("trial")
    ax.set_ylabel("target error (RMS + mean bias)")
    ax.set_title(f"{plan.exercise}: optimisation history ({len(trials)} trials)", fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)


def pareto_figure(search, plan: Plan, chosen=None, path: str | Path | None = None) -> plt.Figure:
    """Target error against peak compression: every trial, the feasible front, the choice."""
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    feasible = [c for c in search.candidates if c.feasible]
    infeasible = [c for c in search.candidates if not c.feasible]
    if infeasible:
        ax.scatter([c.peak_compression_N for c in infeasible], [c.error for c in infeasible], s=12, marker="x",
                   color="tab:red", alpha=0.6, label="breaks a limit")
    if feasible:
        ax.scatter([c.peak_compression_N for c in feasible], [c.error for c in feasible], s=12, color="tab:blue",
                   alpha=0.6, label="feasible")
    front = sorted(search.pareto_front(), key=lambda c: c.peak_compression_N)
    if front:
        ax.plot([c.peak_compression_N for c in front], [c.error for c in front], "o-", color="k", ms=4,
                label="Pareto front")
    if chosen is not None:
        ax.scatter([chosen.peak_compression_N], [chosen.error], s=120, facecolors="none", edgecolors="tab:green",
                   linewidths=2, label=f"chosen (trial {chosen.number})")
    cap = min(plan.limits.compression_N.values())
    ax.axvline(cap, color="r", ls="--", lw=1, label=f"compression limit {cap:.0f} N")
    ax.axvline(cap * (1 - plan.search.margin), color="r", ls=":", lw=1, label="limit less the search margin")
    ax.set_yscale("log")
    ax.set_xlabel("peak compression, any level [N]")
    ax.set_ylabel("target error (RMS + mean bias)")
    ax.set_title(f"{plan.exercise}: target error against peak compression", fontsize=10)
    ax.legend(fontsize=7)
    return _save(fig, path)


def _save(fig: plt.Figure, path: str | Path | None) -> plt.Figure:
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig

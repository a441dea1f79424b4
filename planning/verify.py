"""Verification: the chosen profile, at every device sample, in both engines.

Passes only when, at the device rate,
- the samples keep the device's limits (force, rate of change, direction cone);
- in the engine the search did not use, and in the search engine too, every level's
  compression and AP shear, every fascicle of a capped group and the reserve share
  stay under their limits (the limits themselves: the search kept its margin below them);
- the two engines agree within the margin: |difference| <= margin x limit for loads and
  <= margin for activations, so the margin covers what separates the engines.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from planning.evaluate import Evaluation
from planning.plan import Plan
from planning.profile import check_samples
from twin.spec import LEVELS


@dataclass(frozen=True)
class Verification:
    engine: str  # the engine that re-simulated the profile
    passed: bool
    problems: tuple[str, ...]
    peak: dict  # that engine's peaks
    search_peak: dict  # the search engine's peaks at the same samples
    max_engine_difference: dict[str, float]
    evaluation: Evaluation
    search_evaluation: Evaluation
    #: The plausible patients (weakest, strongest): label -> (this engine's, the search engine's) evaluation.
    band: dict[str, tuple[Evaluation, Evaluation]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"engine": self.engine, "passed": self.passed, "problems": list(self.problems),
                "peak": self.peak, "search_engine_peak": self.search_peak,
                "max_engine_difference": self.max_engine_difference,
                "plausible_patients": {label: {"peak": o.peaks(), "search_engine_peak": s.peaks()}
                                       for label, (o, s) in self.band.items()}}


def verify(plan: Plan, forces_N: np.ndarray, push_direction, other: Evaluation, other_engine: str,
           search: Evaluation, search_engine: str,
           band: dict[str, tuple[Evaluation, Evaluation]] | None = None) -> Verification:
    """`band`: the plausible patients' evaluations (this engine's, the search engine's), label ->
    pair; each must keep every limit too (issue 14: the morphometry's measurement band)."""
    band = band or {}
    problems = list(check_samples(forces_N, plan.device, push_direction))
    patients = [("", other, search)] + [(f", {label} patient", o, s) for label, (o, s) in band.items()]
    for suffix, o, s in patients:
        for name, evaluation in ((other_engine + suffix, o), (search_engine + suffix, s)):
            problems += [f"{name}: {p}" for p in limit_breaches(evaluation, plan)]  # non-finite values included
    margin = plan.search.margin
    difference = {
        "compression_N": float(np.abs(other.compression_N - search.compression_N).max()),
        "ap_shear_N": float(np.abs(other.ap_shear_N - search.ap_shear_N).max()),
        "activation": float(np.abs(other.group_activation - search.group_activation).max()),
    }
    allowed = {"compression_N": margin * min(plan.limits.compression_N.values()),
               "ap_shear_N": margin * min(plan.limits.ap_shear_N.values()), "activation": margin}
    for key, value in difference.items():
        if value > allowed[key]:
            problems.append(f"the engines differ by {value:.3g} in {key}, more than the margin allows ({allowed[key]:.3g})")
    return Verification(other_engine, not problems, tuple(problems), other.peaks(), search.peaks(), difference,
                        other, search, band)


def limit_breaches(evaluation: Evaluation, plan: Plan) -> list[str]:
    """Each limit a per-frame evaluation exceeds, with where and when; first, any NaN or inf
    (NaN compares false with every limit, so it would otherwise pass as within them)."""
    limits, out, times = plan.limits, [], evaluation.times_s
    if evaluation.non_finite():
        out.append(f"non-finite values (NaN or inf) in {', '.join(evaluation.non_finite())}")
    for kind, values in (("compression", evaluation.compression_N), ("AP shear", np.abs(evaluation.ap_shear_N))):
        caps = limits.compression_N if kind == "compression" else limits.ap_shear_N
        for i, level in enumerate(LEVELS):
            k = int(values[:, i].argmax())
            if values[k, i] > caps[level]:
                out.append(f"{level} {kind} {values[k, i]:.0f} N exceeds the {caps[level]:.0f} N limit "
                           f"at t = {times[k]:.2f} s")
    for group, cap in limits.activation.items():  # a cap bounds every fascicle of the group
        column = evaluation.group_peak[:, evaluation.groups.index(group)]
        k = int(column.argmax())
        if column[k] > cap:
            out.append(f"a {group} fascicle reaches activation {column[k]:.2f}, above the cap {cap:g}, "
                       f"at t = {times[k]:.2f} s")
    k = int(evaluation.reserve_share.argmax())
    if evaluation.reserve_share[k] > limits.reserve_share:
        short = evaluation.shortfall()
        what = short.headline if short is not None else \
            f"reserve actuators carry {evaluation.reserve_share[k]:.0%} of a net moment"
        out.append(f"the muscles cannot hold the exercise: {what} at t = {times[k]:.2f} s")
    return out

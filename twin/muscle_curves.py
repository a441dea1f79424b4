"""Muscle force-length curves: the toolkit's (De Groote et al. 2016) and MuJoCo's fitted to it.

The toolkit's statics and OpenSim's DeGrooteFregly2016Muscle share one active force-length
curve (a sum of three Gaussians). MuJoCo's muscle has its own shape, piecewise quadratic between
`lmin` and `lmax` with a half-quadratic then linear passive force scaled by `fpmax`
(engine_util_misc.c, mju_muscleGain / mju_muscleBias). `mujoco_curve_fit` picks lmin and lmax
so that MuJoCo's active curve departs least (minimax) from the toolkit's over the fibres'
working range, and fpmax so that its passive curve matches OpenSim's (least squares); what is
left between the shapes is reported, not hidden (docs/model.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import mujoco
import numpy as np
from scipy import optimize

# De Groote et al. 2016 (Ann Biomed Eng 44:2922) active force-length curve, as in OpenSim's
# DeGrooteFregly2016Muscle: a sum of three Gaussians in normalised fibre length.
_FL_B = np.array([
    [0.8150671134243542, 1.055033428970575, 0.162384573599574, 0.063303448465465],
    [0.433004984392647, 0.716775413397760, -0.029947116970696, 0.200356847296188],
    [0.1, 1.0, 0.5 * np.sqrt(0.5), 0.0],
])
#: Samples of normalised fibre length per unit when fitting MuJoCo's curve.
_FIT_SAMPLES_PER_UNIT = 400


def active_force_length(norm_fiber_length: np.ndarray) -> np.ndarray:
    """Active force-length multiplier of De Groote et al. 2016 (1.0 at optimal length)."""
    lt = np.asarray(norm_fiber_length, float)[..., None]
    b1, b2, b3, b4 = _FL_B.T
    return np.sum(b1 * np.exp(-0.5 * ((lt - b2) / (b3 + b4 * lt)) ** 2), axis=-1)


def passive_force_length(norm_fiber_length: np.ndarray) -> np.ndarray:
    """Passive fibre force multiplier of OpenSim's DeGrooteFregly2016Muscle (its own code)."""
    import opensim as osim

    muscle = osim.DeGrooteFregly2016Muscle()
    values = np.asarray(norm_fiber_length, float)
    return np.array([muscle.calcPassiveForceMultiplier(float(v)) for v in values.ravel()]).reshape(values.shape)


def mujoco_active(norm_length: np.ndarray, lmin: float, lmax: float) -> np.ndarray:
    """MuJoCo's active force-length multiplier (mju_muscleGain at zero velocity, unit force)."""
    return -_mujoco_curve(mujoco.mju_muscleGain, norm_length, lmin, lmax, 0.0, gain=True)


def mujoco_passive(norm_length: np.ndarray, lmax: float, fpmax: float) -> np.ndarray:
    """MuJoCo's passive force multiplier (mju_muscleBias, unit force)."""
    return -_mujoco_curve(mujoco.mju_muscleBias, norm_length, 0.5, lmax, fpmax, gain=False)


def _mujoco_curve(function, norm_length, lmin, lmax, fpmax, gain: bool) -> np.ndarray:
    # range (0, 1) over lengthrange (0, 1): MuJoCo's normalised length equals `len`
    prm = np.array([0.0, 1.0, 1.0, 1.0, lmin, lmax, 1.5, fpmax, 1.2])
    lengthrange = np.array([0.0, 1.0])
    values = np.asarray(norm_length, float)
    if gain:
        out = [function(float(v), 0.0, lengthrange, 1.0, prm) for v in values.ravel()]
    else:
        out = [function(float(v), lengthrange, 1.0, prm) for v in values.ravel()]
    return np.array(out).reshape(values.shape)


@dataclass(frozen=True)
class MujocoCurveFit:
    lmin: float
    lmax: float
    fpmax: float
    #: Largest |MuJoCo - toolkit| active multiplier over the working range (fraction of peak).
    active_gap: float
    #: The normalised fibre lengths, inside the working range, where the gap is at most 0.05.
    within_5_percent: tuple[float, float]
    #: Largest |MuJoCo - OpenSim| passive multiplier over 1..working range top.
    passive_gap: float


@lru_cache(maxsize=8)
def mujoco_curve_fit(working: tuple[float, float]) -> MujocoCurveFit:
    """MuJoCo muscle curve parameters closest to the toolkit's curves over `working`."""
    lo, hi = working
    x = np.linspace(lo, hi, int((hi - lo) * _FIT_SAMPLES_PER_UNIT) + 1)
    target = active_force_length(x)

    def gap(p):
        return float(np.max(np.abs(mujoco_active(x, *p) - target)))

    start = min(((a, b) for a in np.linspace(0.2, lo, 7) for b in np.linspace(hi, 2.0, 7)), key=gap)
    fit = optimize.minimize(gap, start, method="Nelder-Mead", options={"xatol": 1e-5, "fatol": 1e-7})
    lmin, lmax = (float(v) for v in fit.x)
    diff = np.abs(mujoco_active(x, lmin, lmax) - target)
    # the central stretch, around optimal length, where the curves agree within 5 % of peak
    inside = diff <= 0.05
    k = int(np.argmin(np.abs(x - 1.0)))
    a = k
    while a > 0 and inside[a - 1]:
        a -= 1
    b = k
    while b < len(x) - 1 and inside[b + 1]:
        b += 1
    stretch = np.linspace(1.0, hi, int((hi - 1.0) * _FIT_SAMPLES_PER_UNIT) + 1)
    passive = passive_force_length(stretch)
    shape = mujoco_passive(stretch, lmax, 1.0)
    fpmax = float(shape @ passive / (shape @ shape))
    return MujocoCurveFit(lmin, lmax, fpmax, float(diff.max()), (float(x[a]), float(x[b])),
                          float(np.max(np.abs(mujoco_passive(stretch, lmax, fpmax) - passive))))

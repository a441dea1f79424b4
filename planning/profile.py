"""Robot force profiles: a few parameters that expand to a force time series at the device rate.

A profile acts at one contact (a pad on the thorax) and is fixed to that body: its force turns
with the trunk, as a pad strapped to it does. Parameters:
- `knots_N`: force magnitude at K equally spaced phases of the cycle, joined by a periodic
  shape-preserving cubic (PCHIP), so the curve never leaves the range of its knots;
- `tilt_deg`, `azimuth_deg`: the force direction, tilted from the pad's push direction towards
  an azimuth (0 = the body's superior axis, 90 = the right-hand side of the push direction).

Device limits hold by construction of `Profile.samples`: knots lie in [0, max_force_N], the tilt
within the cone, and the sampled magnitude is the largest curve under the spline whose change
between consecutive samples (the last to the first included: the cycle repeats) is at most
max_rate_N_per_s / rate_hz. Lowering a force is the safe direction to correct it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator

from lumbar_twin.errors import InputError


#: The fastest device rate a plan is verified at: verification re-simulates every sample in both
#: engines for three patients, so 1 kHz is 6000-8000 samples a cycle for data/exercises.yaml.
MAX_RATE_HZ = 1000.0


@dataclass(frozen=True)
class Device:
    """What the robot can do: its limits hold in every exported sample."""

    max_force_N: float = 150.0
    max_rate_N_per_s: float = 300.0
    cone_deg: float = 20.0  # half-angle around the pad's push direction
    rate_hz: float = 100.0

    def __post_init__(self):
        for name in ("max_force_N", "max_rate_N_per_s", "rate_hz"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):  # inf is no device's limit and makes NaN samples
                raise InputError(None, f"must be a positive finite number, not {value}", field=f"device.{name}")
        if self.rate_hz > MAX_RATE_HZ:
            raise InputError(None, f"{self.rate_hz:g} Hz: at most {MAX_RATE_HZ:g} Hz (every sample is re-simulated "
                                   "in both engines for each plausible patient)", field="device.rate_hz")
        if not 0.0 <= self.cone_deg < 90.0:
            raise InputError(None, f"{self.cone_deg} deg: the cone half-angle must be in 0..90 deg",
                             field="device.cone_deg")


@dataclass(frozen=True)
class Profile:
    contact: str
    cycle_s: float
    knots_N: tuple[float, ...]
    tilt_deg: float = 0.0
    azimuth_deg: float = 0.0

    @property
    def parameters(self) -> dict[str, float]:
        out = {f"knot_{k}_N": float(v) for k, v in enumerate(self.knots_N)}
        out.update(tilt_deg=float(self.tilt_deg), azimuth_deg=float(self.azimuth_deg))
        return out

    def direction(self, push_direction) -> np.ndarray:
        """Unit force direction in the contact body's frame."""
        n = np.asarray(push_direction, float)
        n = n / np.linalg.norm(n)
        up = np.array([0.0, 1.0, 0.0]) if abs(n[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
        e1 = up - (up @ n) * n
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(n, e1)  # n x superior = the right-hand side (z) for an anterior push
        tilt, azimuth = math.radians(self.tilt_deg), math.radians(self.azimuth_deg)
        return math.cos(tilt) * n + math.sin(tilt) * (math.cos(azimuth) * e1 + math.sin(azimuth) * e2)

    def magnitude(self, time_s: np.ndarray) -> np.ndarray:
        """The spline through the knots (before the device's rate limit)."""
        k = len(self.knots_N)
        values = np.asarray(self.knots_N, float)
        if k == 1:
            return np.full(np.shape(time_s), values[0])
        # Periodic PCHIP: two knots of the neighbouring cycles on each side fix the end slopes.
        phases = np.arange(-2, k + 3) / k
        spline = PchipInterpolator(phases, values[np.arange(-2, k + 3) % k])
        return spline(np.mod(np.asarray(time_s, float) / self.cycle_s, 1.0))

    def samples(self, device: Device, push_direction) -> tuple[np.ndarray, np.ndarray]:
        """(times_s (n,), forces_N (n, 3) in the contact body's frame) at the device rate."""
        times = sample_times(self.cycle_s, device.rate_hz)
        magnitude = np.clip(self.magnitude(times), 0.0, device.max_force_N)
        magnitude = rate_limited(magnitude, device.max_rate_N_per_s / device.rate_hz)
        return times, magnitude[:, None] * self.direction(push_direction)[None, :]


def sample_times(cycle_s: float, rate_hz: float) -> np.ndarray:
    """One cycle at the device rate: n = round(cycle x rate) samples from t = 0."""
    n = max(1, round(cycle_s * rate_hz))
    return np.arange(n) / rate_hz


def rate_limited(values: np.ndarray, max_step: float) -> np.ndarray:
    """The largest cyclic sequence below `values` whose consecutive steps are at most max_step.

    y_i = min_j (x_j + max_step * d(i, j)) with d the cyclic distance: a lower envelope with
    bounded slope. Computed as running minima over three copies of the cycle.
    """
    x = np.asarray(values, float)
    n = len(x)
    tripled = np.tile(x, 3)
    index = np.arange(3 * n) * max_step
    forward = index + np.minimum.accumulate(tripled - index)
    backward = (-index + np.minimum.accumulate((tripled + index)[::-1])[::-1])
    return np.minimum(forward, backward)[n:2 * n]


def check_samples(forces_N: np.ndarray, device: Device, push_direction, tolerance: float = 1e-6) -> list[str]:
    """What in a sampled profile breaks the device's limits (empty when it is within them)."""
    problems = []
    forces = np.asarray(forces_N, float)
    finite = np.isfinite(forces).all(axis=1)
    if not finite.all():  # NaN compares false with every limit: it must never pass as "within"
        rows = np.flatnonzero(~finite)
        return [f"{len(rows)} samples are not finite numbers (NaN or inf; first at sample {rows[0] + 1})"]
    magnitude = np.linalg.norm(forces, axis=1)
    if magnitude.max(initial=0.0) > device.max_force_N * (1 + tolerance):
        problems.append(f"force {magnitude.max():.1f} N exceeds the device maximum {device.max_force_N:g} N")
    rate = np.linalg.norm(np.diff(forces, axis=0, append=forces[:1]), axis=1).max(initial=0.0) * device.rate_hz
    if rate > device.max_rate_N_per_s * (1 + tolerance):
        problems.append(f"rate of change {rate:.1f} N/s exceeds the device maximum {device.max_rate_N_per_s:g} N/s")
    n = np.asarray(push_direction, float) / np.linalg.norm(push_direction)
    pushing = magnitude > 0.1  # below 0.1 N, rounding to 1e-6 N could tilt the direction visibly
    if pushing.any():
        angle = np.degrees(np.arccos(np.clip(forces[pushing] @ n / magnitude[pushing], -1.0, 1.0))).max()
        if angle > device.cone_deg + 1e-3:
            problems.append(f"direction {angle:.1f} deg off the pad's push direction, outside the "
                            f"{device.cone_deg:g} deg cone")
    return problems

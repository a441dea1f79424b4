"""The same frame solved with OpenSim's moment arms and inverse dynamics gives the same
activations and loads as with MuJoCo's (issue 3, item 8)."""
import math

import numpy as np
import pytest

from twin.loads import ExternalLoad, hand_load
from twin.posture import posture
from twin.spec import LEVELS
from twin.statics import Statics

FRAMES = {
    "upright": ((0, 0, 0), []),
    "flexed 30 deg, 10 kg held": ((30, 0, 0), [hand_load(10.0)]),
    "bent and twisted, pushed at the back": ((15, 10, -8), [ExternalLoad("thorax_pad", (50.0, -10.0, 20.0),
                                                                         (2.0, 0.0, -3.0))]),
    "flexed 60 deg, chest pad in body frame": ((60, 0, 0), [ExternalLoad("chest_pad", (0.0, 0.0, -40.0),
                                                                         frame="body")]),
}


@pytest.fixture(scope="module")
def solvers(sample_twin):
    spec = sample_twin.spec
    return Statics(spec, engine="mujoco"), Statics(spec, engine="opensim")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FRAMES))
def test_engines_give_the_same_activations_and_loads(sample_twin, solvers, name):
    angles, loads = FRAMES[name]
    pose = posture(sample_twin.spec, *map(math.radians, angles))
    with_mujoco, with_opensim = (s.solve(pose, loads) for s in solvers)
    np.testing.assert_allclose(with_opensim.net_moments_Nm, with_mujoco.net_moments_Nm, atol=1e-6)
    rms = float(np.sqrt(np.mean((with_opensim.activations - with_mujoco.activations) ** 2)))
    assert rms < 0.01
    for level in LEVELS:
        a, b = with_mujoco.levels[level], with_opensim.levels[level]
        assert b.compression_N == pytest.approx(a.compression_N, rel=0.02)
        for shear in ("ap_shear_N", "lat_shear_N"):  # 2 % of the compression for near-zero shears
            assert abs(getattr(b, shear) - getattr(a, shear)) <= 0.02 * abs(a.compression_N)
    print(f"\n{name}: activation RMS difference {rms:.1e}, L4-L5 compression "
          f"{with_mujoco.levels['L4-L5'].compression_N:.1f} N (MuJoCo) vs "
          f"{with_opensim.levels['L4-L5'].compression_N:.1f} N (OpenSim)")


@pytest.mark.slow
def test_engines_agree_on_a_moving_frame(sample_twin, solvers):
    """Inertia: MuJoCo's mj_inverse and body accelerations against OpenSim's inverse dynamics
    and centre-of-mass accelerations differentiated from its kinematics."""
    spec = sample_twin.spec
    pose = posture(spec, math.radians(25), math.radians(5))
    names = spec.coordinate_names
    velocities = {n: 0.4 * ((-1) ** k) for k, n in enumerate(names)}  # rad/s
    accelerations = {n: 3.0 * math.cos(k) for k, n in enumerate(names)}  # rad/s^2
    still, moving = (solvers[0].solve(pose, [hand_load(5.0)]),
                     solvers[0].solve(pose, [hand_load(5.0)], velocities, accelerations))
    other = solvers[1].solve(pose, [hand_load(5.0)], velocities, accelerations)
    assert np.abs(moving.net_moments_Nm - still.net_moments_Nm).max() > 1.0  # inertia matters here
    np.testing.assert_allclose(other.net_moments_Nm, moving.net_moments_Nm, atol=1e-6)
    for level in LEVELS:
        assert other.levels[level].compression_N == pytest.approx(moving.levels[level].compression_N, rel=0.02)

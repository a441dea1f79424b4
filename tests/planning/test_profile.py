"""Force profiles: device limits hold by construction (issue 5, item 2)."""
import numpy as np
import pytest

from planning.profile import Device, Profile, check_samples, rate_limited, sample_times


def test_rate_limited_is_the_largest_cyclic_envelope_below_the_input():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 100, 80)
    step = 2.5
    y = rate_limited(x, step)
    i = np.arange(len(x))
    gap = np.abs(i[:, None] - i[None, :])
    brute = (x[None, :] + step * np.minimum(gap, len(x) - gap)).min(1)  # definition, O(n^2)
    assert np.allclose(y, brute)
    assert np.all(y <= x + 1e-12)
    assert np.abs(np.diff(y, append=y[:1])).max() <= step + 1e-12  # the wrap-around step too


@pytest.mark.parametrize("seed", range(20))
def test_random_parameters_always_keep_the_device_limits(seed):
    rng = np.random.default_rng(seed)
    device = Device(max_force_N=rng.uniform(50, 200), max_rate_N_per_s=rng.uniform(20, 400),
                    cone_deg=rng.uniform(0, 30), rate_hz=rng.choice([50.0, 100.0, 250.0]))
    profile = Profile("thorax_pad", rng.uniform(3, 9), tuple(rng.uniform(0, device.max_force_N, rng.integers(1, 9))),
                      rng.uniform(0, device.cone_deg), rng.uniform(-180, 180))
    push = rng.normal(size=3)
    times, forces = profile.samples(device, push)
    assert check_samples(forces, device, push) == []
    assert len(times) == round(profile.cycle_s * device.rate_hz)
    assert np.allclose(np.diff(times), 1 / device.rate_hz)


def test_pchip_stays_within_its_knots_and_passes_through_them():
    profile = Profile("thorax_pad", 6.0, (0.0, 150.0, 10.0, 140.0))
    t = np.linspace(0, 6, 2001)
    m = profile.magnitude(t)
    assert m.min() >= -1e-9 and m.max() <= 150.0 + 1e-9
    assert profile.magnitude(np.array([0.0, 1.5, 3.0, 4.5])) == pytest.approx([0.0, 150.0, 10.0, 140.0])
    assert profile.magnitude(np.array([6.0]))[0] == pytest.approx(0.0)  # periodic


def test_direction_tilts_towards_the_azimuth_within_the_cone():
    push = (1.0, 0.0, 0.0)
    up = Profile("p", 1.0, (1.0,), tilt_deg=20.0, azimuth_deg=0.0).direction(push)
    right = Profile("p", 1.0, (1.0,), tilt_deg=20.0, azimuth_deg=90.0).direction(push)
    assert up == pytest.approx([np.cos(np.radians(20)), np.sin(np.radians(20)), 0.0])
    assert right == pytest.approx([np.cos(np.radians(20)), 0.0, np.sin(np.radians(20))])


def test_check_samples_names_each_broken_limit():
    device = Device(max_force_N=100, max_rate_N_per_s=100, cone_deg=10, rate_hz=100)
    forces = np.zeros((100, 3))
    forces[50] = [0.0, 120.0, 0.0]  # too strong, too sudden, and sideways
    problems = " | ".join(check_samples(forces, device, (1, 0, 0)))
    assert "120.0 N exceeds the device maximum" in problems
    assert "rate of change" in problems
    assert "outside the 10 deg cone" in problems


def test_bad_device_figures_are_refused():
    from lumbar_twin.errors import InputError

    with pytest.raises(InputError, match="device.max_force_N"):
        Device(max_force_N=0)
    with pytest.raises(InputError, match="cone"):
        Device(cone_deg=95)


def test_sample_times_cover_one_cycle():
    t = sample_times(6.0, 100.0)
    assert len(t) == 600 and t[0] == 0 and t[-1] == pytest.approx(5.99)

"""Quasi-static biomechanics: inverse dynamics, static optimisation and level loads against
independent computations, and L4-L5 compression against in-vivo figures (issue 3)."""
import math

import numpy as np
import opensim as osim
import pytest

from twin.kinematics import body_transforms, path_points_world
from twin.posture import posture
from twin.spec import LEVELS
from twin.statics import ExternalLoad, Statics, active_force_length, hand_load

G = 9.80665


@pytest.fixture(scope="module")
def statics(template):
    return Statics(template)


def test_force_length_curve_matches_opensim():
    muscle = osim.DeGrooteFregly2016Muscle()
    lengths = np.linspace(0.45, 1.8, 40)
    expected = [muscle.calcActiveForceLengthMultiplier(float(x)) for x in lengths]
    np.testing.assert_allclose(active_force_length(lengths), expected, rtol=1e-9, atol=1e-12)


def test_posture_spreads_global_angles_by_the_rhythm(template):
    pose = posture(template, math.radians(40), math.radians(-10), math.radians(5))
    for kind, total in (("flexion", 40), ("lateral", -10), ("rotation", 5)):
        angles = [pose[f"{lv.replace('-', '_')}_{kind}"] for lv in LEVELS]
        assert math.degrees(sum(angles)) == pytest.approx(total)
    assert pose["L1_L2_flexion"] > pose["L5_S1_flexion"]  # Christophy 2012: most at L1-L2


def independent_net_moments(spec, pose, loads=()):
    """Generalised forces muscles must supply, from numpy kinematics and statics by hand."""
    world = body_transforms(spec, pose)
    g = np.array(spec.gravity_m_per_s2)
    children = {}
    for j in spec.joints:
        children.setdefault(j.parent, []).append(j.child)
    out = {}
    for joint in spec.joints:
        above, stack = set(), [joint.child]
        while stack:
            b = stack.pop()
            above.add(b)
            stack.extend(children.get(b, ()))
        centre = world[joint.child][:3, 3]
        torque = np.zeros(3)
        for body in spec.bodies:
            if body.name in above:
                com = world[body.name][:3, :3] @ body.com_m + world[body.name][:3, 3]
                torque += np.cross(com - centre, body.mass_kg * g)
        for load in loads:
            c = spec.contact(load.contact)
            if c.body in above:
                p = world[c.body][:3, :3] @ c.location_m + world[c.body][:3, 3]
                torque += np.cross(p - centre, load.force_N)
        # Axis of coordinate k in world: previous rotations of the same joint included.
        rot = world[joint.parent][:3, :3]
        from twin.kinematics import axis_angle_matrix, orientation_matrix

        rot = rot @ orientation_matrix(joint.orientation_rad)
        for coord in joint.coordinates:
            axis = rot @ np.array(coord.axis)
            out[coord.name] = -(torque @ axis) + coord.stiffness_Nm_per_rad * pose.get(coord.name, 0.0)
            rot = rot @ axis_angle_matrix(coord.axis, pose.get(coord.name, 0.0))
    return np.array([out[n] for n in spec.coordinate_names])


@pytest.mark.parametrize("angles", [(0, 0, 0), (35, 0, 0), (20, 12, -8), (-10, -5, 10)])
def test_inverse_dynamics_matches_hand_computation(template, statics, angles):
    pose = posture(template, *map(math.radians, angles))
    loads = [hand_load(8.0), ExternalLoad("thorax_pad", (60.0, -20.0, 15.0))]
    result = statics.solve(pose, loads)
    np.testing.assert_allclose(result.net_moments_Nm, independent_net_moments(template, pose, loads),
                               atol=1e-8)


def test_muscles_and_reserves_balance_every_net_moment(template, statics):
    pose = posture(template, math.radians(25), math.radians(10), math.radians(5))
    result = statics.solve(pose, [hand_load(5.0)])
    arms = statics.engine.moment_arms(pose)
    np.testing.assert_allclose(arms.T @ result.forces_N + result.reserve_Nm, result.net_moments_Nm, atol=1e-4)
    assert np.all(result.activations >= 0) and np.all(result.activations <= 1)
    assert result.reserve_share < 0.05


def test_level_loads_balance_forces_on_the_upper_body(template, statics):
    """Recompute each level's load from numpy kinematics: gravity, the load and muscle pulls."""
    pose = posture(template, math.radians(30), math.radians(-8))
    loads = [ExternalLoad("chest_pad", (-80.0, 10.0, 0.0))]
    result = statics.solve(pose, loads)
    world = body_transforms(template, pose)
    for level in LEVELS:
        joint = next(j for j in template.joints if j.level == level)
        above = {joint.child}
        for j in template.joints:  # the chain above this level (a path up to the thorax)
            if j.parent in above:
                above.add(j.child)
        total = sum(b.mass_kg * np.array(template.gravity_m_per_s2) for b in template.bodies if b.name in above)
        total = total + np.array(loads[0].force_N)
        for f, force in zip(template.fascicles, result.forces_N):
            pts = path_points_world(f, world)
            for k in range(len(pts) - 1):
                a, b = f.points[k].body in above, f.points[k + 1].body in above
                if a != b:
                    d = (pts[k + 1] - pts[k]) if a else (pts[k] - pts[k + 1])
                    total = total + force * d / np.linalg.norm(d)
        local = world[joint.child][:3, :3].T @ total
        got = result.levels[level]
        assert got.compression_N == pytest.approx(-local[1], rel=1e-9)
        assert got.ap_shear_N == pytest.approx(local[0], abs=1e-6)
        assert got.lat_shear_N == pytest.approx(local[2], abs=1e-6)


def test_lateral_bending_is_mirror_symmetric(template, statics):
    right = statics.solve(posture(template, 0.0, math.radians(15)))
    left = statics.solve(posture(template, 0.0, math.radians(-15)))
    for group, sides in right.groups.items():
        assert sides["left"] == pytest.approx(left.groups[group]["right"], abs=2e-3)
    assert right.levels["L4-L5"].compression_N == pytest.approx(left.levels["L4-L5"].compression_N, rel=1e-3)
    assert right.levels["L4-L5"].lat_shear_N == pytest.approx(-left.levels["L4-L5"].lat_shear_N, abs=1.0)


# Wilke et al. 1999 (Spine 24:755), L4-L5 intradiscal pressure in vivo: relaxed standing 0.5 MPa,
# standing flexed forward 1.1 MPa, lifting 20 kg with a round back 2.3 MPa (4.6 x standing).
# With a disc area of about 1800 mm^2 and Nachemson's factor (pressure = 1.5 x mean stress),
# 0.5 MPa is about 600 N.
def l4l5(statics, template, flexion_deg, loads=()):
    result = statics.solve(posture(template, math.radians(flexion_deg)), loads)
    assert result.reserve_share < 0.05, f"reserves carry {result.reserve_share:.1%} at {flexion_deg} deg"
    return result.levels["L4-L5"].compression_N


def test_l4l5_compression_against_wilke_1999(template, statics):
    upright = l4l5(statics, template, 0)
    flexed30 = l4l5(statics, template, 30)
    flexed60 = l4l5(statics, template, 60)
    held10 = l4l5(statics, template, 0, [hand_load(10.0)])
    print(f"\nL4-L5 compression: upright {upright:.0f} N, 30 deg {flexed30:.0f} N ({flexed30 / upright:.2f}x), "
          f"60 deg {flexed60:.0f} N ({flexed60 / upright:.2f}x), 10 kg at the chest {held10:.0f} N "
          f"({held10 / upright:.2f}x)")
    assert 300 <= upright <= 900  # several hundred newtons
    assert 1.8 <= flexed30 / upright <= 3.2  # flexed forward: 1.1 / 0.5 = 2.2x
    assert 1.8 <= held10 / upright <= 3.2
    assert flexed30 < flexed60 <= 4.6 * upright  # never beyond lifting 20 kg with a round back


def test_compression_rises_with_flexion(template, statics):
    values = [l4l5(statics, template, angle) for angle in range(0, 61, 10)]
    assert all(b > a for a, b in zip(values, values[1:]))


def test_cubed_criterion_balances_moments_and_spreads_the_load(template):
    pose = posture(template, math.radians(40))
    squared, cubed = Statics(template).solve(pose), Statics(template, exponent=3).solve(pose)
    arms = Statics(template).engine.moment_arms(pose)
    np.testing.assert_allclose(arms.T @ cubed.forces_N + cubed.reserve_Nm, cubed.net_moments_Nm, atol=1e-6)
    assert cubed.activations.max() < squared.activations.max()  # Crowninshield & Brand 1981
    assert np.sum(cubed.activations**3) <= np.sum(squared.activations**3) + 1e-9


def test_reserve_shares_are_reported_per_coordinate(template, statics):
    doc = statics.solve(posture(template, math.radians(20))).to_dict()
    assert set(doc["reserve_shares"]) == set(template.coordinate_names)
    assert doc["reserve_share"] == max(doc["reserve_shares"].values())


def test_a_posture_the_muscles_cannot_hold_is_flagged(template):
    """Caps every group at 2 % activation: reserves must carry the moment, and say so."""
    weak = Statics(template, activation_caps={g: 0.02 for g in {f.group for f in template.fascicles}})
    result = weak.solve(posture(template, math.radians(45)), [hand_load(10.0)])
    assert result.flagged and result.reserve_share > 0.05

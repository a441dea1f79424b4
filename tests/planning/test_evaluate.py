"""Precomputed kinematics plus a robot force equal a full engine frame (issue 5, items 2 and 5)."""
import math

import numpy as np
import pytest

from planning.evaluate import Evaluator, precompute
from planning.exercise import load_exercise
from twin.engines import MujocoEngine, OpenSimEngine
from twin.loads import ExternalLoad
from twin.posture import posture
from twin.statics import Statics


@pytest.fixture(scope="module")
def engines(template):
    return {"mujoco": MujocoEngine(template), "opensim": OpenSimEngine(template)}


def test_opensim_jacobian_moment_arms_equal_its_moment_arm_solver(template, engines):
    engine = engines["opensim"]
    rng = np.random.default_rng(7)
    for _ in range(3):
        pose = {c: float(rng.uniform(-0.15, 0.15)) for c in template.coordinate_names}
        assert engine.frame(pose).moment_arms == pytest.approx(engine.moment_arms(pose), abs=1e-9)


def test_contact_jacobians_agree_between_engines(template, engines):
    pose = posture(template, math.radians(25), math.radians(8), math.radians(-4))
    (jm, rm), (jo, ro) = (engines[e].contact_jacobian(pose, "thorax_pad") for e in ("mujoco", "opensim"))
    assert jm == pytest.approx(jo, abs=1e-9) and rm == pytest.approx(ro, abs=1e-12)
    assert np.abs(jm).max() > 0.1  # a real lever arm, not zeros


@pytest.mark.parametrize("engine", ["mujoco", "opensim"])
def test_superposed_force_equals_the_engines_own_frame_with_the_load(template, engines, engine):
    """A force enters linearly: base frame - J^T R F must equal the engine's frame with the load."""
    exercise = load_exercise("lateral_bend")
    times = np.array([0.7, 2.0, 5.1])
    trajectory = precompute(template, exercise, times, "thorax_pad", engine)
    forces = np.array([[80.0, -10.0, 15.0], [40.0, 5.0, -20.0], [120.0, 0.0, 0.0]])
    superposed = Evaluator(template, trajectory)(forces)
    statics = Statics(template, engine=engine)
    for k, (pose, force) in enumerate(zip(exercise.poses(template, times), forces)):
        direct = statics.solve(pose, [ExternalLoad("thorax_pad", tuple(force), frame="body")])
        frame = engines[engine].frame(pose, [ExternalLoad("thorax_pad", tuple(force), frame="body")])
        expected = trajectory.frames[k].net_moments - trajectory.contact_jacobian[k] @ force
        assert expected == pytest.approx(frame.net_moments, abs=1e-8)
        for i, level in enumerate(direct.levels):
            assert superposed.compression_N[k, i] == pytest.approx(direct.levels[level].compression_N, abs=1e-6)
            assert superposed.ap_shear_N[k, i] == pytest.approx(direct.levels[level].ap_shear_N, abs=1e-6)
        assert superposed.activation("multifidus", "left")[k] == pytest.approx(direct.groups["multifidus"]["left"], abs=1e-9)

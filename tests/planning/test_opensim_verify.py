"""Independent verification by OpenSim's own StaticOptimization + JointReaction (issue 14, point 1)."""
from dataclasses import replace

import numpy as np
import pytest

from planning.evaluate import precompute
from planning.opensim_verify import UNIFORM_FRAMES, verification_frames, verify_with_opensim
from planning.planner import _net_moments, make_plan, plan_for


@pytest.fixture(scope="module")
def planned(loaded_twin):
    plan = plan_for(loaded_twin, exercise="trunk_extension", targets={"multifidus": 0.25},
                    limits={"activation": {"psoas": 0.5}}, search={"trials": 30, "seed": 2})
    result = make_plan(loaded_twin, plan, opensim_verification=False)
    full = precompute(loaded_twin.spec, result.exercise, result.times_s, plan.contact)
    return result, result.exercise.poses(loaded_twin.spec, result.times_s), _net_moments(full, result.forces_N)


def _verify(loaded_twin, planned, claimed=None, **kwargs):
    result, poses, net = planned
    return verify_with_opensim(loaded_twin.directory / "model.osim", loaded_twin.spec, result.plan, poses,
                               result.forces_N, claimed or result.prediction, net, **kwargs)


def test_opensim_reproduces_the_profile_within_the_tolerances(loaded_twin, planned):
    result = planned[0]
    frames = verification_frames(result.prediction, result.plan)
    claimed = result.prediction
    assert len(frames) >= UNIFORM_FRAMES
    for level in range(5):  # every frame where the search engine's loads peak is re-solved
        assert claimed.compression_N[:, level].argmax() in frames
        assert np.abs(claimed.ap_shear_N[:, level]).argmax() in frames
    v = _verify(loaded_twin, planned)
    assert v.passed, v.problems
    # Measured on the sample twin: 0.03 % compression, 1e-4 activation (separate code paths:
    # OpenSim's IPOPT and Simbody's reaction forces against DAQP and a free-body sum).
    assert v.max_difference["compression_relative"] < 0.002
    assert v.max_difference["targeted_activation"] < 0.001
    ours = claimed.compression_N[v.frames]
    assert np.abs(v.evaluation.compression_N - ours).max() < 2.0  # N
    assert np.abs(v.evaluation.ap_shear_N - claimed.ap_shear_N[v.frames]).max() < 2.0
    assert v.to_dict()["frames"] == len(v.frames)


def test_a_claim_opensim_does_not_reproduce_is_refused(loaded_twin, planned):
    """A profile whose claimed compression is 3 % off, or whose muscles are 10 % weaker in the
    model than the claim assumed, fails the independent verification, naming what differs."""
    result = planned[0]
    optimistic = replace(result.prediction, compression_N=result.prediction.compression_N * 0.97)
    v = _verify(loaded_twin, planned, claimed=optimistic)
    assert not v.passed and any("compression at" in p and "more than 1%" in p for p in v.problems)
    weaker = 0.9 * np.array([f.max_isometric_force_N for f in loaded_twin.spec.fascicles])
    v = _verify(loaded_twin, planned, max_isometric_force_N=weaker)
    assert not v.passed and any("multifidus" in p and "more than 0.005 apart" in p for p in v.problems)

"""Phantoms shared by the imaging tests: made once per session, two at a time."""
from concurrent.futures import ProcessPoolExecutor

import pytest

from imaging.phantom import make_phantom

#: Ten subjects: noise 2-6 %, default anatomy and three habitus/pathology variants.
ACCURACY_CASES = [(seed, (0.02, 0.04, 0.06)[seed % 3], (None, "atrophy", "slim", "large")[seed % 4])
                  for seed in range(100, 110)]


def _make(case):
    seed, noise, variant = case
    return make_phantom(seed, noise=noise, variant=variant)


@pytest.fixture(scope="session")
def accuracy_phantoms():
    with ProcessPoolExecutor(2) as pool:
        return list(pool.map(_make, ACCURACY_CASES))


@pytest.fixture(scope="session")
def phantom():
    return make_phantom(7, noise=0.04, orientation=("L", "P", "S"))

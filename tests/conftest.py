import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]
SAMPLE_PATIENT = REPO / "data" / "sample" / "patient.json"


@pytest.fixture(scope="session", autouse=True)
def quiet_opensim():
    import opensim

    opensim.Logger.setLevelString("warn")


@pytest.fixture(scope="session")
def template():
    from twin.template import load_template

    return load_template()


@pytest.fixture(scope="session")
def sample_twin(tmp_path_factory):
    """The sample patient's twin, built once through the public entry point."""
    from twin.build import build_twin

    return build_twin(SAMPLE_PATIENT, tmp_path_factory.mktemp("sample_twin"))

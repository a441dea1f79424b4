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


@pytest.fixture(scope="session")
def loaded_twin(sample_twin):
    from twin.simulate import load_twin

    return load_twin(sample_twin.directory)


@pytest.fixture(scope="session")
def exported_plan(loaded_twin, tmp_path_factory):
    """One plan through the command line: trunk extension, multifidus 0.25, ros2 files too
    (shared by tests/planning and the clinic page's tests)."""
    from app.cli import main

    out = tmp_path_factory.mktemp("plan")
    assert main(["plan", str(loaded_twin.directory), "--exercise", "trunk_extension", "--targets", "multifidus=0.25",
                 "--trials", "120", "--seed", "3", "--format", "ros2", "--out", str(out)]) == 0
    return out

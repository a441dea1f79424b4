import pytest


@pytest.fixture(scope="session")
def loaded_twin(sample_twin):
    from twin.simulate import load_twin

    return load_twin(sample_twin.directory)


@pytest.fixture(scope="session")
def exported_plan(loaded_twin, tmp_path_factory):
    """One plan through the command line: trunk extension, multifidus 0.25, ros2 files too."""
    from app.cli import main

    out = tmp_path_factory.mktemp("plan")
    assert main(["plan", str(loaded_twin.directory), "--exercise", "trunk_extension", "--targets", "multifidus=0.25",
                 "--trials", "120", "--seed", "3", "--format", "ros2", "--out", str(out)]) == 0
    return out

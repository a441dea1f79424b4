"""The notebooks run top to bottom (issue 6, item 2), executed with nbclient on small settings.

Each notebook has one cell tagged `parameters`; the test adds a cell after it (as papermill
does) that sets small settings and a temporary output folder, runs the notebook from the
repository root in the `python3` kernel, and checks that no cell failed, that the kernel is
this interpreter (the repository's virtual environment), that pictures were displayed and that
the files each notebook promises were written.
"""
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
TIMEOUT_S = 300  # per cell; the whole suite of three takes well under a minute

pytestmark = pytest.mark.slow


def run_notebook(name: str, parameters: dict) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    tagged = [i for i, cell in enumerate(nb.cells) if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{name}: expected one cell tagged 'parameters'"
    source = "\n".join(f"{key} = {value!r}" for key, value in parameters.items())
    source += "\nimport sys as _sys\nprint('kernel prefix:', _sys.prefix)"
    nb.cells.insert(tagged[0] + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))
    client = NotebookClient(nb, timeout=TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(REPO)}})
    client.execute()  # raises CellExecutionError, naming the cell, on the first error
    return nb


def outputs(nb):
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])]


def check_ran(nb, min_pictures: int) -> str:
    """No error output; the kernel is this interpreter; at least `min_pictures` PNGs shown."""
    everything = outputs(nb)
    assert not [o for o in everything if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in everything if o.output_type == "stream")
    assert f"kernel prefix: {sys.prefix}\n" in text, "the notebook kernel is not this virtual environment's python"
    pictures = [o for o in everything if o.output_type in ("display_data", "execute_result") and "image/png" in o.data]
    assert len(pictures) >= min_pictures, f"{len(pictures)} pictures displayed, expected {min_pictures}"
    return text


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One folder for the module: notebook 3 plans on the twin notebook 2 built."""
    root = tmp_path_factory.mktemp("notebooks")
    return {"root": root, "twin": root / "twin"}


def test_imaging_to_morphometry_notebook(shared):
    out = shared["root"] / "01"
    # the slim habitus is about half the voxels of the default phantom: the same steps, faster
    nb = run_notebook("01_imaging_to_morphometry.ipynb",
                      {"SEED": 1, "VARIANT": "slim", "NOISE": 0.04, "OUT_DIR": str(out)})
    text = check_ran(nb, min_pictures=2)  # qc.png, measured against true
    for name in ("water.nii.gz", "fat.nii.gz", "vertebrae.nii.gz", "labels_truth.nii.gz", "truth.json"):
        assert (out / "phantom" / name).is_file()
    for name in ("labels.nii.gz", "morphometry.json", "morphometry.csv", "qc.png"):
        assert (out / "segmentation" / name).is_file()
    assert "levels L1-L2, L2-L3, L3-L4, L4-L5, L5-S1" in text
    assert "Dice" in text and "median |CSA error|" in text


def test_build_and_inspect_twin_notebook(shared):
    nb = run_notebook("02_build_and_inspect_twin.ipynb",
                      {"TWIN_DIR": str(shared["twin"]), "FLEXION_DEG": [0, 20, 40, 60]})
    text = check_ran(nb, min_pictures=4)  # twin.png, 3-D, moment arms, loads
    for name in ("model.osim", "model.xml", "twin.json", "twin.png"):
        assert (shared["twin"] / name).is_file()
    assert "fascicles (124)" in text and "coordinates (15)" in text
    difference = float(text.split("poses: ")[1].split(" m")[0])
    assert difference < 1e-6  # the two engines' moment arms coincide


def test_planning_whatif_pareto_notebook(shared):
    out = shared["root"] / "03"
    nb = run_notebook("03_planning_whatif_pareto.ipynb",
                      {"TRIALS": 30, "TWIN_DIR": str(shared["twin"]), "OUT_DIR": str(out)})
    text = check_ran(nb, min_pictures=4)  # cycle, history, Pareto, what-if
    for name in ("profile.csv", "profile.json", "plan.json", "history.csv", "cycle.png", "history.png",
                 "pareto.png", "report.md"):
        assert (out / "plan" / name).is_file()
    assert ": passed;" in text  # verified in the other engine before export
    assert "profiles on the front" in text
    assert text.count("\n  0.80 ") + text.count("\n  1.00 ") + text.count("\n  1.20 ") == 3  # one what-if row each


def test_batch_export_notebook(tmp_path):
    nb = run_notebook("04_batch_export.ipynb", {"TRIALS": 10, "WORKERS": 2, "OUT": str(tmp_path)})
    text = check_ran(nb, min_pictures=2)  # summary.png, the profiles
    batch = tmp_path / "04_batch" / "batch"
    assert (batch / "summary.csv").is_file() and (batch / "summary.png").is_file()
    for item in ("S001-ext", "S001-hold", "M002-ext"):
        assert (batch / "items" / item / "plan" / "profile.json").is_file()
    assert "BAD-003: failed" in text  # the bad row is reported, the rest went on
    assert "'S001-ext': 'done (earlier run)'" in text  # and the rerun kept the finished items

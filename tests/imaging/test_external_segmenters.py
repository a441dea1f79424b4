"""`--segmenter totalsegmentator|musclemap`: the external tool runs as its own program and its
output is imported by its convention and checked. The tools (PyTorch, weights) are not installed
in the tests: stand-in programs on PATH write what the real tools wrote for these real scans
(TotalSegmentator's own total_mr output for the T1 subject; the manual labels of the Dixon
subject in MuscleMap's whole-body values), so what is tested is the interface: the command line,
the file the tool writes, the convention, the checks, and the message when a tool is missing."""
import os
import stat
import sys
from pathlib import Path

import pytest

from imaging.external import segmenters
from imaging.morphometry import load_morphometry
from app.cli import main

REAL = Path(__file__).parents[1] / "data" / "realmri"

FAKE_TOTALSEGMENTATOR = f"""#!{sys.executable}
import argparse, shutil, nibabel as nib
p = argparse.ArgumentParser(); p.add_argument("-i"); p.add_argument("-o"); p.add_argument("--ml", action="store_true")
p.add_argument("--task"); a = p.parse_args()
assert a.task == "total_mr" and a.ml
assert nib.load(a.i).shape == nib.load("{REAL / 't1_subject3_image.nii.gz'}").shape
shutil.copy("{REAL / 't1_subject3_labels_totalsegmentator.nii.gz'}", a.o)
"""

FAKE_MUSCLEMAP = f"""#!{sys.executable}
import argparse, numpy as np, nibabel as nib
p = argparse.ArgumentParser(); p.add_argument("-i"); a = p.parse_args()
manual = nib.load("{REAL / 'dixon_subject1_labels_manual.nii.gz'}")
values = np.asarray(manual.dataobj).astype(np.int16)
wholebody = np.zeros_like(values)
for manual_value, mm in ((1, 5112), (2, 5102), (3, 5101), (4, 5111), (0, 0)):
    wholebody[values == manual_value] = mm
wholebody[:5, :5, :] = 6160  # another structure of the whole-body model (sacrum's value): ignored
nib.save(nib.Nifti1Image(wholebody, manual.affine), a.i.replace(".nii.gz", "_dseg.nii.gz"))
"""

FAILING = f"""#!{sys.executable}
import sys; print("CUDA out of memory", file=sys.stderr); sys.exit(3)
"""


@pytest.fixture
def tools(tmp_path, monkeypatch):
    folder = tmp_path / "bin"
    folder.mkdir()

    def install(name, text):
        path = folder / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)

    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return install


def test_each_tool_is_one_module():
    assert set(segmenters()) == {"totalsegmentator", "musclemap"}


def test_totalsegmentator_runs_and_its_output_is_imported(tools, tmp_path):
    tools("TotalSegmentator", FAKE_TOTALSEGMENTATOR)
    out = tmp_path / "seg"
    assert main(["segment", "--image", str(REAL / "t1_subject3_image.nii.gz"), "--segmenter", "totalsegmentator",
                 "--lowest-disc", "L1-L2", "--out", str(out)]) == 0
    morph = load_morphometry(out / "morphometry.json")
    assert {m.muscle for m in morph.muscles} == {"autochthon", "iliopsoas"}
    assert morph.provenance["method"].startswith("external segmenter totalsegmentator")
    assert morph.provenance["label_convention"] == "totalsegmentator-total-mr"


def test_musclemap_runs_and_its_output_is_imported(tools, tmp_path):
    tools("mm_segment", FAKE_MUSCLEMAP)
    out = tmp_path / "seg"
    assert main(["segment", "--water", str(REAL / "dixon_subject1_water.nii.gz"),
                 "--fat", str(REAL / "dixon_subject1_fat.nii.gz"), "--vertebrae", str(REAL / "dixon_subject1_vertebrae.nii.gz"),
                 "--segmenter", "musclemap", "--out", str(out)]) == 0
    morph = load_morphometry(out / "morphometry.json")
    assert {(m.muscle, m.side) for m in morph.muscles} == {(m, s) for m in ("erector_spinae", "multifidus")
                                                           for s in ("left", "right")}


def test_a_missing_tool_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    out = tmp_path / "seg"
    assert main(["segment", "--image", str(REAL / "t1_subject3_image.nii.gz"), "--segmenter", "totalsegmentator",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "TotalSegmentator is not installed" in err and "pip install" in err
    assert not out.exists()


def test_a_failing_tool_gives_its_last_message(tools, tmp_path, capsys):
    tools("mm_segment", FAILING)
    out = tmp_path / "seg"
    assert main(["segment", "--image", str(REAL / "t1_subject3_image.nii.gz"), "--segmenter", "musclemap",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "mm_segment failed (exit 3): CUDA out of memory" in err and not out.exists()

"""Output files and folders: modes a reader can use, and an --out that is not a folder refused
before any work, with one line and exit 2."""
import stat

import pytest

from app.cli import main
from lumbar_twin.errors import InputError
from lumbar_twin.fileio import check_output_folder, staged_directory, write_json_atomic
from tests.conftest import SAMPLE_PATIENT


def test_atomic_writes_get_the_mode_open_would_give_not_mkstemps_private_one(tmp_path):
    write_json_atomic(tmp_path / "a.json", {"x": 1})
    with open(tmp_path / "b.json", "w") as handle:  # what a plain open() gives in this process
        handle.write("{}")
    mode = stat.S_IMODE((tmp_path / "a.json").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "b.json").stat().st_mode)


def test_an_output_path_that_is_a_file_or_under_one_is_refused(tmp_path):
    (tmp_path / "f").write_text("keep me")
    for bad in (tmp_path / "f", tmp_path / "f" / "sub"):
        with pytest.raises(InputError, match="is not a folder"):
            check_output_folder(bad)
        with pytest.raises(InputError, match="is not a folder"):
            with staged_directory(bad):
                pass
    assert (tmp_path / "f").read_text() == "keep me"
    assert check_output_folder(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"


def test_cli_refuses_an_out_that_is_a_file_before_building(tmp_path, capsys):
    target = tmp_path / "out.txt"
    target.write_text("keep me")
    assert main(["build", str(SAMPLE_PATIENT), "--out", str(target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "out.txt" in err[0] and "not a folder" in err[0]
    assert target.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]

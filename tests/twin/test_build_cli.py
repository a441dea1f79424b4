"""`lumbar-twin build`: the four files, their contents, and bad input (issue 2, items 6 and 8)."""
import json
import subprocess
import sys

import mujoco
import opensim as osim
import pytest

from lumbar_twin.fileio import sha256_file
from app.cli import main
from tests.conftest import SAMPLE_PATIENT


def test_build_writes_four_files_that_load_in_their_engines(sample_twin):
    files = sample_twin.files
    assert all(p.is_file() and p.stat().st_size > 0 for p in files.values())
    model = osim.Model(str(files["model.osim"]))
    model.initSystem()
    assert model.getMuscles().getSize() == len(sample_twin.spec.fascicles)
    mj = mujoco.MjModel.from_xml_path(str(files["model.xml"]))
    assert mj.nu == mj.ntendon == len(sample_twin.spec.fascicles)
    assert list(mj.opt.gravity) == [0.0, -9.80665, 0.0]
    assert all(mj.actuator_lengthrange[:, 1] > mj.actuator_lengthrange[:, 0])
    assert files["twin.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_twin_json_holds_spec_and_provenance(sample_twin):
    doc = json.loads(sample_twin.files["twin.json"].read_text())
    assert doc["schema"] == "lumbar-twin/twin@1"
    assert doc["patient"]["id"] == "SAMPLE-001"
    inputs = doc["provenance"]["inputs"]
    assert inputs["patient"]["sha256"] == sha256_file(SAMPLE_PATIENT)
    assert inputs["morphometry"]["sha256"] == sha256_file(SAMPLE_PATIENT.parent / "morphometry.json")
    assert set(inputs) == {"template", "patient", "morphometry"}
    assert doc["provenance"]["toolkit_version"]
    from twin.spec import ModelSpec

    assert ModelSpec.from_dict(doc["spec"]) == sample_twin.spec


def test_sample_patient_left_multifidus_is_weaker(sample_twin):
    force = {}
    for f in sample_twin.spec.fascicles:
        if f.name.startswith("mf_L5_S3"):
            force[f.side] = f.max_isometric_force_N
    assert force["left"] < 0.8 * force["right"]


def test_build_twice_gives_identical_files(sample_twin, tmp_path):
    assert main(["build", str(SAMPLE_PATIENT), "--out", str(tmp_path)]) == 0
    for name in ("model.osim", "model.xml", "twin.json"):
        assert (tmp_path / name).read_bytes() == sample_twin.files[name].read_bytes(), name


def write_patient(tmp_path, **changes):
    data = json.loads(SAMPLE_PATIENT.read_text())
    morph = json.loads((SAMPLE_PATIENT.parent / "morphometry.json").read_text())
    data["morphometry"] = morph
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    path = tmp_path / "patient.json"
    path.write_text(json.dumps(data))
    return path, data


def bad_morphometry(index, field, value):
    morph = json.loads((SAMPLE_PATIENT.parent / "morphometry.json").read_text())
    morph["muscles"][index][field] = value
    return morph


BAD_PATIENTS = {
    "missing mass": ({"mass_kg": None}, "field 'mass_kg': missing"),
    "mass out of range": ({"mass_kg": 500}, "field 'mass_kg': 500 kg is outside the human mass range 30-250 kg"),
    "height in cm": ({"height_m": 166}, "field 'height_m': 166 m is outside the human height range 1.2-2.3 m (metres, not centimetres?)"),
    "child": ({"age": 9}, "field 'age'"),
    "unknown sex": ({"sex": "x"}, "field 'sex'"),
    "typo in a field": ({"heigth_m": 1.7}, "field 'heigth_m': unknown field"),
    "a real name": ({"name": "Jane Doe"}, "identifies a person"),
    "name as id": ({"id": "Jane Doe"}, "field 'id': must be a pseudonymous code"),
    "fat fraction in percent": ({"morphometry": bad_morphometry(3, "fat_fraction", 21.0)},
                                "field 'morphometry.muscles[3].fat_fraction': fat fraction 21.0 is outside 0..1"),
    "unknown muscle": ({"morphometry": bad_morphometry(0, "muscle", "latissimus")},
                       "field 'morphometry.muscles[0].muscle': unknown muscle 'latissimus'"),
    "unknown level": ({"morphometry": bad_morphometry(1, "level", "L5-L6")},
                      "field 'morphometry.muscles[1].level': unknown level 'L5-L6'"),
    "unknown strength group": ({"strength_factors": {"biceps": 1.0}}, "field 'strength_factors'"),
    "activation cap above 1": ({"limits": {"activation": {"multifidus": 1.5}}}, "field 'limits.activation'"),
}


@pytest.mark.parametrize("case", sorted(BAD_PATIENTS))
def test_bad_patient_file_gives_one_line_and_exit_2(case, tmp_path, capsys):
    changes, expected = BAD_PATIENTS[case]
    path, _ = write_patient(tmp_path, **changes)
    out = tmp_path / "out"
    assert main(["build", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"lumbar-twin: error: {path}")
    assert expected in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["patient.json"]  # no staging left behind


def test_missing_morphometry_file_is_named(tmp_path, capsys):
    path, _ = write_patient(tmp_path, morphometry="nowhere.json")
    assert main(["build", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "nowhere.json: file not found" in capsys.readouterr().err


def test_not_json_is_reported(tmp_path, capsys):
    path = tmp_path / "patient.json"
    path.write_text("{ id: oops")
    assert main(["build", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_yaml_patient_file_works(tmp_path):
    import yaml

    data = json.loads(SAMPLE_PATIENT.read_text())
    data["morphometry"] = str(SAMPLE_PATIENT.parent / "morphometry.json")
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(data))
    from twin.patient import load_patient

    patient = load_patient(tmp_path / "p.yaml")
    assert patient.id == "SAMPLE-001" and patient.morphometry is not None


def test_existing_output_is_untouched_by_a_failed_build(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.osim").write_text("previous")
    path, _ = write_patient(tmp_path, mass_kg=1)
    assert main(["build", str(path), "--out", str(out)]) == 2
    assert (out / "model.osim").read_text() == "previous"


def test_console_script_exits_2_without_traceback(tmp_path):
    path, _ = write_patient(tmp_path, height_m=0.5)
    run = subprocess.run([sys.executable, "-m", "app.cli", "build", str(path), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert run.stderr.count("\n") == 1


def test_a_twin_with_an_edited_or_swapped_model_file_is_refused(sample_twin, tmp_path, capsys):
    """twin.json records each model file's sha256; the planner's OpenSim re-solve and a MuJoCo
    user read those files, so one that is not the build's stops the loader (and every command)."""
    import shutil

    from twin.simulate import load_twin

    doc = json.loads(sample_twin.files["twin.json"].read_text())
    assert doc["models"] == {name: sha256_file(sample_twin.files[name]) for name in ("model.osim", "model.xml")}
    for name in ("model.osim", "model.xml"):
        copy = tmp_path / name.replace(".", "_")
        shutil.copytree(sample_twin.directory, copy)
        path = copy / name
        path.write_text(path.read_text().replace("<max_isometric_force>", "<max_isometric_force>1", 1)
                        if name == "model.osim" else path.read_text().replace('gainprm="', 'gainprm="1', 1))
        assert path.read_bytes() != sample_twin.files[name].read_bytes()
        with pytest.raises(Exception, match=f"{name}.*sha256 differs from twin.json"):
            load_twin(copy)
        assert main(["simulate", str(copy), "--flexion", "10"]) == 2
        assert "sha256 differs" in capsys.readouterr().err

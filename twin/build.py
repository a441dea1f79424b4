"""Build a patient's twin: patient file -> model.osim, model.xml, twin.json, twin.png.

All four files are made in a staging folder and moved into the output folder only when every
one of them is complete, so a failure leaves the output folder as it was. Both written models
are read back and their muscles checked against the spec (`twin.muscle_checks`): a muscle that
is not the spec's stops the build, named.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import mujoco
import opensim

from imaging.uncertainty import band_table, method_of
from lumbar_twin import __version__
from lumbar_twin.errors import LumbarTwinError
from lumbar_twin.fileio import sha256_file, staged_directory, write_json_atomic
from twin.morphometry_use import RowUse, resolve_morphometry
from twin.mujoco_model import write_mujoco
from twin.muscle_checks import check_mujoco_muscles, check_opensim_muscles
from twin.opensim_model import write_opensim
from twin.patient import Patient, load_patient
from twin.personalise import ForceScaling, personalise, plausible_forces
from twin.picture import draw_twin
from twin.simulate import MODEL_FILES
from twin.spec import ModelSpec
from twin.template import TEMPLATE_PATH, load_template

log = logging.getLogger(__name__)

TWIN_SCHEMA = "lumbar-twin/twin@1"
OUTPUT_FILES = ("model.osim", "model.xml", "twin.json", "twin.png")


@dataclass(frozen=True)
class Twin:
    """A built twin: its spec, the patient it was made for and where its files are."""

    spec: ModelSpec
    patient: Patient
    scalings: tuple[ForceScaling, ...]
    directory: Path
    #: How each imaged muscle, side and level entered the twin (twin.morphometry_use).
    morphometry_use: tuple[RowUse, ...] = ()

    @property
    def files(self) -> dict[str, Path]:
        return {name: self.directory / name for name in OUTPUT_FILES}


def build_twin(patient_path: str | Path, out_dir: str | Path, accept_qc_fail: bool = False) -> Twin:
    """Read a patient file and write the patient's twin into `out_dir`. A morphometry row whose
    QC failed raises InputError unless `accept_qc_fail` (then it is used and marked)."""
    patient = load_patient(patient_path)  # every input fault is raised before anything is written
    template = load_template()
    uses: tuple[RowUse, ...] = ()
    if patient.morphometry is not None:
        resolved, uses = resolve_morphometry(patient.morphometry, template.reference_morphometry,
                                             patient.sources.get("morphometry", str(patient_path)), accept_qc_fail)
        patient = replace(patient, morphometry=resolved)
    spec, scalings = personalise(template, patient)
    out_dir = Path(out_dir)
    with staged_directory(out_dir) as stage:
        write_models(spec, stage)
        models = {name: sha256_file(stage / name) for name in MODEL_FILES}
        write_json_atomic(stage / "twin.json", twin_document(spec, patient, scalings, template, uses, models))
        log.info("drawing the twin")
        draw_twin(spec, stage / "twin.png", template=template,
                  title=f"lumbar twin {patient.id}: {patient.sex}, {patient.age} y, "
                        f"{patient.height_m:.2f} m, {patient.mass_kg:.0f} kg")
    return Twin(spec, patient, scalings, out_dir, uses)


def write_models(spec: ModelSpec, folder: Path) -> None:
    """model.osim and model.xml into `folder`, each read back and its muscles checked."""
    log.info("writing OpenSim model")
    write_opensim(spec, folder / "model.osim")
    check_opensim_muscles(spec, _check_opensim(folder / "model.osim"))
    log.info("writing MuJoCo model")
    write_mujoco(spec, folder / "model.xml")
    check_mujoco_muscles(spec, mujoco.MjModel.from_xml_path(str(folder / "model.xml")))


def twin_document(spec: ModelSpec, patient: Patient, scalings, template: ModelSpec | None = None,
                  uses: tuple[RowUse, ...] = (), models: dict[str, str] | None = None) -> dict:
    """twin.json: personalised spec plus provenance (no timestamps: same input, same bytes).
    "morphometry_use" says, per imaged muscle, side and level, whether the twin rests on a
    measured, estimated or accepted row or on the template. "models": {file: sha256} of the
    model files written beside it, so that a swapped or edited model is refused at load (the
    planner's OpenSim re-solve and a MuJoCo user read those files, not the spec)."""
    inputs = {"template": _hash_entry(TEMPLATE_PATH)}
    inputs.update({role: _hash_entry(Path(p)) for role, p in patient.sources.items()})
    return {
        "schema": TWIN_SCHEMA,
        "patient": patient.summary(),
        "spec": spec.to_dict(),
        "personalisation": [asdict(s) for s in scalings],
        "uncertainty": uncertainty_document(template or load_template(), patient),
        "morphometry_use": [u.to_dict() for u in uses],
        "models": dict(models or {}),
        "provenance": {
            "toolkit": "lumbar-twin",
            "toolkit_version": __version__,
            "opensim_version": opensim.__version__,
            "mujoco_version": mujoco.__version__,
            "inputs": inputs,
        },
    }


def uncertainty_document(template: ModelSpec, patient: Patient) -> dict:
    """The morphometry's measurement band and the plausible patients' muscle forces (twin.json)."""
    morph = patient.morphometry
    return {
        "methods": dict(zip(("csa", "fat_fraction"), method_of(morph))) if morph is not None else None,
        "rows": band_table(morph) if morph is not None else [],
        "max_isometric_force_N": {label: [round(v, 6) for v in forces]
                                  for label, forces in plausible_forces(template, patient).items()},
        "source": "imaging/uncertainty.py, data/morphometry_uncertainty.yaml",
    }


def _hash_entry(path: Path) -> dict:
    return {"file": path.name, "sha256": sha256_file(path)}


def _check_opensim(path: Path) -> opensim.Model:
    """The written file must reload and initialise in OpenSim, or nothing is delivered."""
    try:
        model = opensim.Model(str(path))
        model.initSystem()
    except Exception as exc:  # OpenSim raises its own exception types through SWIG
        raise LumbarTwinError(f"the OpenSim model did not reload: {exc}") from exc
    return model

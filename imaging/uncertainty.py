"""Measurement uncertainty of morphometry rows, and the weakest and strongest plausible rows.

Every row is a measurement with an error (segmentation, partial volume, fat-fraction bias). A
row's band is, in order: its own `csa_uncertainty` (relative) and `fat_fraction_uncertainty`
(absolute) if it carries them; otherwise the default of the method named in the morphometry's
provenance (data/morphometry_uncertainty.yaml, each figure with its source); widened by
`qc_widening` when the row's QC status (`qc`) is not "pass".

The weakest plausible row has CSA x (1 - u_csa) and fat fraction + u_ff, so its lean CSA is
lean x (1 - u_csa) x (1 - ff - u_ff) / (1 - ff); the strongest the other way round. Lean CSA
sets muscle force (twin/personalise.py), so these two rows bound the patient's strength.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import yaml

from imaging.morphometry import Morphometry, MuscleMeasure
from lumbar_twin import DATA_DIR

UNCERTAINTY_FILE = DATA_DIR / "morphometry_uncertainty.yaml"


@dataclass(frozen=True)
class RowUncertainty:
    csa_relative: float  # half-width of the CSA band, relative (0.10 = +-10 %)
    fat_fraction: float  # half-width of the fat-fraction band, absolute
    source: str  # 'row', or the method whose default applies (+ ', QC widened')


@functools.cache
def _table() -> dict:
    return yaml.safe_load(UNCERTAINTY_FILE.read_text())


def method_of(morphometry: Morphometry) -> tuple[str, str]:
    """(CSA method, fat-fraction method) keys of data/morphometry_uncertainty.yaml for this
    morphometry's provenance ('unknown' where it does not say)."""
    provenance = morphometry.provenance or {}
    described = str(provenance.get("method", ""))
    methods = _table()["methods"]
    segmenter = next((key for key, entry in methods.items()
                      if entry["match"] and key != "single_contrast" and entry["match"] in described), "unknown")
    single = provenance.get("contrast") in ("single", "t1", "t2", "pd") or methods["single_contrast"]["match"] in described
    return segmenter, "single_contrast" if single else segmenter


def row_uncertainty(morphometry: Morphometry, row: MuscleMeasure) -> RowUncertainty:
    """The band of one row (see the module docstring for the order of sources)."""
    table = _table()
    segmenter, fat_method = method_of(morphometry)
    csa_table = table["methods"][segmenter]["csa"]
    csa = getattr(row, "csa_uncertainty", None)
    fat = getattr(row, "fat_fraction_uncertainty", None)
    source = "row" if csa is not None and fat is not None else segmenter
    csa = float(csa_table.get(row.muscle, csa_table["default"])) if csa is None else float(csa)
    fat = float(table["methods"][fat_method]["fat_fraction"]) if fat is None else float(fat)
    status = getattr(row, "qc", "pass")
    if status != "pass":
        widen = float(table["qc_widening"])
        csa, fat, source = csa * widen, fat * widen, f"{source}, QC {status}: x{widen:g}"
    return RowUncertainty(min(csa, 0.9), min(fat, 0.5), source)


def plausible_row(row: MuscleMeasure, band: RowUncertainty, weakest: bool) -> MuscleMeasure:
    """The row at the weak (or strong) end of its band: CSA, fat fraction and lean CSA moved together."""
    sign = -1.0 if weakest else 1.0
    csa = row.csa_mm2 * (1.0 + sign * band.csa_relative)
    fat = min(max(row.fat_fraction - sign * band.fat_fraction, 0.0), 1.0)
    lean_share = (1.0 - fat) / (1.0 - row.fat_fraction) if row.fat_fraction < 1.0 else 0.0
    lean = min(row.lean_csa_mm2 * (1.0 + sign * band.csa_relative) * lean_share, csa)
    return replace(row, csa_mm2=csa, lean_csa_mm2=lean, fat_fraction=fat)


def plausible_morphometry(morphometry: Morphometry, weakest: bool) -> Morphometry:
    """Every row at the weak (or strong) end of its band (one corner: all rows off the same way)."""
    rows = tuple(plausible_row(r, row_uncertainty(morphometry, r), weakest) for r in morphometry.muscles)
    return replace(morphometry, muscles=rows)


def band_table(morphometry: Morphometry) -> list[dict]:
    """Per row: the measured values, the band and where it comes from (for twin.json)."""
    out = []
    for row in morphometry.muscles:
        band = row_uncertainty(morphometry, row)
        weak, strong = plausible_row(row, band, True), plausible_row(row, band, False)
        out.append({"muscle": row.muscle, "side": row.side, "level": row.level,
                    "csa_uncertainty": band.csa_relative, "fat_fraction_uncertainty": band.fat_fraction,
                    "source": band.source, "lean_csa_mm2": row.lean_csa_mm2,
                    "lean_csa_mm2_weakest": round(weak.lean_csa_mm2, 3),
                    "lean_csa_mm2_strongest": round(strong.lean_csa_mm2, 3)})
    return out

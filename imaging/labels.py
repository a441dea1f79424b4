"""Label values: the toolkit's muscle labels, vertebra conventions, and mapping files.

Muscle labels (labels.nii.gz): psoas left/right = 1/2, quadratus lumborum 3/4, erector spinae
5/6, multifidus 7/8; 0 is everything else. Vertebra labels (default convention): vertebral
bodies L1..L5 = 1..5, S1 = 6.
"""
from __future__ import annotations

from pathlib import Path

from imaging.morphometry import MUSCLES, SIDES
from lumbar_twin.errors import InputError
from lumbar_twin.fileio import read_json

#: (muscle, side) -> label value, and back.
MUSCLE_LABELS = {(m, s): 1 + 2 * i + j for i, m in enumerate(MUSCLES) for j, s in enumerate(SIDES)}
LABEL_NAMES = {value: f"{m}_{s}" for (m, s), value in MUSCLE_LABELS.items()}
VERTEBRAE = ("L1", "L2", "L3", "L4", "L5", "S1")
DEFAULT_VERTEBRA_LABELS = {name: k + 1 for k, name in enumerate(VERTEBRAE)}
#: TotalSegmentator (v2 'total' task) vertebra values.
TOTALSEGMENTATOR_VERTEBRA_LABELS = {"L1": 31, "L2": 30, "L3": 29, "L4": 28, "L5": 27, "S1": 26}
VERTEBRA_CONVENTIONS = {"default": DEFAULT_VERTEBRA_LABELS, "totalsegmentator": TOTALSEGMENTATOR_VERTEBRA_LABELS}


def vertebra_convention(name_or_path: str | None) -> dict[str, int]:
    """'default', 'totalsegmentator', or a JSON file {"L1": value, ..., "S1": value}."""
    if name_or_path is None:
        return dict(DEFAULT_VERTEBRA_LABELS)
    if name_or_path in VERTEBRA_CONVENTIONS:
        return dict(VERTEBRA_CONVENTIONS[name_or_path])
    mapping = _read_mapping(Path(name_or_path))
    unknown = set(mapping) - set(VERTEBRAE)
    if unknown:
        raise InputError(name_or_path, f"unknown vertebra names {sorted(unknown)}; expected {', '.join(VERTEBRAE)}")
    return mapping


def muscle_label_map(path: str | Path) -> dict[int, int]:
    """A name/value mapping file for an external label map -> {external value: toolkit value}.

    The file is JSON: {"psoas_left": 5, "psoas_right": [6, 7], ..., "ignore": [1, 2, 3]} with
    names muscle_side; "ignore" lists values of other structures (they become background).
    """
    mapping = _read_mapping(Path(path))
    names = {name: value for value, name in LABEL_NAMES.items()}
    out = {}
    for value in mapping.pop("ignore", []):
        out[int(value)] = 0
    for name, value in mapping.items():
        if name not in names:
            raise InputError(path, f"unknown muscle label name {name!r}; expected e.g. 'multifidus_left'",
                             field=name)
        for v in value if isinstance(value, list) else [value]:
            out[int(v)] = names[name]
    return out


def _read_mapping(path: Path) -> dict:
    data = read_json(path)
    if not isinstance(data, dict) or not all(isinstance(v, (int, list)) for v in data.values()):
        raise InputError(path, "expected an object of name: integer label value")
    return data

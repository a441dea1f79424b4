"""Label conventions: which value of an external label map is which muscle or vertebra.

Built-in conventions of established segmenters live in data/label_conventions.yaml with their
sources (MuscleMap whole-body and abdomen models, TotalSegmentator `total`, `total_mr` and
`vertebrae_mr`, SPINEPS); any other map comes with a JSON mapping file.

- Muscle map, JSON: {"psoas_left": 5, "psoas_right": [6, 7], ..., "ignore": [1, 2, 3]} with the
  row names of imaging.morphometry (merged classes `autochthon_*`, `iliopsoas_*` included);
  every value present in a mapped map must be named or ignored.
- Vertebra map, JSON: {"L1": value, ..., "S1": value} (optionally "L6", "T12").
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import yaml

from imaging.labels import ROW_LABELS
from lumbar_twin import DATA_DIR
from lumbar_twin.errors import InputError
from lumbar_twin.fileio import read_json

CONVENTIONS_PATH = DATA_DIR / "label_conventions.yaml"
#: Vertebra names a convention may hold, cranial first.
VERTEBRA_NAMES = ("T12", "L1", "L2", "L3", "L4", "L5", "L6", "S1")


@dataclass(frozen=True)
class MuscleConvention:
    """External value -> toolkit row label value (imaging.labels.ROW_LABELS), 0 for ignored."""

    name: str
    values: dict[int, int]
    #: True: a value outside `values` means the map is not this convention's (an error);
    #: False: other values are other structures (background).
    only: bool
    source: str = ""


@dataclass(frozen=True)
class VertebraConvention:
    name: str
    values: dict[str, int]  # vertebra name -> value
    #: One value for every vertebra (TotalSegmentator total_mr): numbered from the sacrum or an anchor.
    all_vertebrae: int | None = None
    #: Values from here on are discs or endplates (SPINEPS 100+X, 200+X), not vertebrae.
    ignore_from: int | None = None
    #: One value for every disc (TotalSegmentator total_mr): with `all_vertebrae`, the discs part the vertebrae.
    discs: int | None = None
    source: str = ""


@functools.cache
def _table() -> dict:
    with open(CONVENTIONS_PATH) as stream:
        return yaml.safe_load(stream)


def muscle_conventions() -> tuple[str, ...]:
    return tuple(_table()["muscles"])


def vertebra_conventions() -> tuple[str, ...]:
    return tuple(_table()["vertebrae"])


def muscle_convention(name_or_path: str | Path) -> MuscleConvention:
    """A built-in muscle convention by name, or a JSON mapping file; InputError otherwise."""
    entry = _table()["muscles"].get(str(name_or_path))
    if entry is not None:
        values = {int(v): ROW_LABELS[_row_key(name, name_or_path)] for name, v in entry["values"].items()}
        return MuscleConvention(str(name_or_path), values, bool(entry.get("only", False)), entry["source"])
    path = Path(name_or_path)
    if not path.suffix.lower() == ".json":
        raise InputError(None, f"unknown label convention {str(name_or_path)!r}: give one of "
                               f"{', '.join(muscle_conventions())} or a JSON mapping file", field="--label-map")
    mapping = _read_mapping(path)
    values = {int(v): 0 for v in mapping.pop("ignore", [])}
    for name, value in mapping.items():
        for v in value if isinstance(value, list) else [value]:
            values[int(v)] = ROW_LABELS[_row_key(name, path)]
    return MuscleConvention(path.name, values, True, f"mapping file {path}")


def vertebra_convention(name_or_path: str | Path | None) -> VertebraConvention:
    """'default', a built-in convention by name, or a JSON file {"L1": value, ..., "S1": value}."""
    entries = _table()["vertebrae"]
    name = "default" if name_or_path is None else str(name_or_path)
    if name in entries:
        entry = entries[name]
        return VertebraConvention(name, {k: int(v) for k, v in entry["values"].items()}, entry.get("all_vertebrae"),
                                  entry.get("ignore_from"), entry.get("discs"), entry["source"])
    path = Path(name)
    if path.suffix.lower() != ".json":
        raise InputError(None, f"unknown vertebra label convention {name!r}: give one of "
                               f"{', '.join(entries)} or a JSON file", field="--vertebra-labels")
    mapping = _read_mapping(path)
    unknown = set(mapping) - set(VERTEBRA_NAMES)
    if unknown:
        raise InputError(path, f"unknown vertebra names {sorted(unknown)}; expected {', '.join(VERTEBRA_NAMES)}")
    return VertebraConvention(path.name, {k: int(v) for k, v in mapping.items()}, source=f"mapping file {path}")


def _row_key(name: str, source) -> tuple[str, str]:
    muscle, _, side = name.rpartition("_")
    if (muscle, side) not in ROW_LABELS:
        names = ", ".join(sorted({m for m, _ in ROW_LABELS}))
        raise InputError(source, f"unknown muscle label name {name!r}; expected muscle_side with muscle one of "
                                 f"{names}", field=name)
    return muscle, side


def _read_mapping(path: Path) -> dict:
    data = read_json(path)
    if not isinstance(data, dict) or not all(isinstance(v, (int, list)) for v in data.values()):
        raise InputError(path, "expected an object of name: integer label value")
    return data

"""Label values of the toolkit's own maps.

Muscle labels (labels.nii.gz): psoas left/right = 1/2, quadratus lumborum 3/4, erector spinae
5/6, multifidus 7/8; merged classes that some external segmenters write and that are kept as
they are: autochthon (erector spinae + multifidus) 9/10, iliopsoas (psoas + iliacus) 11/12;
0 is everything else. Vertebra labels (default convention): vertebral bodies L1..L5 = 1..5,
S1 = 6. External conventions: imaging.conventions.
"""
from __future__ import annotations

from imaging.morphometry import MERGED, MUSCLES, SIDES

#: (muscle, side) -> label value of the muscles the built-in segmenters draw, and back.
MUSCLE_LABELS = {(m, s): 1 + 2 * i + j for i, m in enumerate(MUSCLES) for j, s in enumerate(SIDES)}
#: Merged classes of external segmenters (never drawn by the built-in ones).
MERGED_LABELS = {(m, s): 1 + 2 * (len(MUSCLES) + i) + j for i, m in enumerate(MERGED) for j, s in enumerate(SIDES)}
#: Every row a label map may hold.
ROW_LABELS = {**MUSCLE_LABELS, **MERGED_LABELS}
LABEL_NAMES = {value: f"{m}_{s}" for (m, s), value in ROW_LABELS.items()}
VERTEBRAE = ("L1", "L2", "L3", "L4", "L5", "S1")
DEFAULT_VERTEBRA_LABELS = {name: k + 1 for k, name in enumerate(VERTEBRAE)}

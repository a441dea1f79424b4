"""Which morphometry rows the twin uses, and how: measured, estimated, accepted or template.

The imaging pipeline writes what it measured and nothing else (imaging.pipeline): a muscle or
level not measured has no row, some external segmenters write merged classes, and every row
carries a QC status. Before personalisation (twin.personalise) the rows are resolved here:

- a row whose QC failed stops the build, unless the user accepts failed rows explicitly; an
  accepted row is used and marked;
- autochthon (erector spinae + multifidus, TotalSegmentator) where neither muscle was measured
  at that level and side: split by the template's healthy erector spinae : multifidus CSA ratio
  at that level (data/lumbar_template.yaml, with its sources), fat fraction shared; marked
  estimated;
- iliopsoas (psoas + iliacus) where the psoas was not measured: above L5-S1 taken as psoas (the
  iliacus lies in the iliac fossa, below the iliac crest, which lies at or below the L4-L5 disc
  in most adults: Chakraverty et al. 2007, J Anat 210:232), marked estimated; at L5-S1 refused
  (it holds the iliacus), so the template is used there;
- every imaged muscle, side and level left without a row takes the template (personalisation
  scales the fascicle by the levels that were measured, or by mass when none were) and is
  marked so in twin.json and the plan's report.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from imaging.morphometry import LEVELS, MUSCLES, SIDES, Morphometry, MuscleMeasure
from lumbar_twin.errors import InputError
from twin.spec import ReferenceMorphometry

#: How a (muscle, side, level) enters the twin.
USES = ("measured", "estimated", "accepted_qc_fail", "template")


@dataclass(frozen=True)
class RowUse:
    muscle: str
    side: str
    level: str
    use: str  # one of USES
    note: str = ""
    #: the imaging QC status of the row it rests on (pass, warn, fail; imaging.morphometry),
    #: "not imaged" for a template row
    qc: str = "not imaged"

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_morphometry(morphometry: Morphometry, reference: ReferenceMorphometry, source: str,
                        accept_qc_fail: bool = False) -> tuple[Morphometry, tuple[RowUse, ...]]:
    """Rows of the four imaged muscles the twin uses, and how every (muscle, side, level) was
    used. Raises InputError naming `source` for a failed row unless `accept_qc_fail`."""
    failed = [m for m in morphometry.muscles if m.qc == "fail"]
    if failed and not accept_qc_fail:
        first = failed[0]
        reason = first.qc_reasons[0] if first.qc_reasons else "no reason recorded"
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        raise InputError(source, f"morphometry row {first.muscle} {first.side} at {first.level} failed QC: {reason}"
                                 f"{more}; look at qc.png, then rebuild with --accept-qc-fail to use such rows")
    rows: dict[tuple[str, str, str], MuscleMeasure] = {}
    uses: dict[tuple[str, str, str], RowUse] = {}
    for m in morphometry.muscles:
        if m.muscle in MUSCLES:
            key = (m.muscle, m.side, m.level)
            rows[key] = m
            uses[key] = (RowUse(*key, "accepted_qc_fail", "; ".join(m.qc_reasons), qc=m.qc) if m.qc == "fail"
                         else RowUse(*key, "measured", "; ".join(m.qc_reasons), qc=m.qc))
    for m in morphometry.muscles:
        if m.muscle == "autochthon":
            _split_autochthon(m, reference, rows, uses)
        elif m.muscle == "iliopsoas":
            _iliopsoas_as_psoas(m, rows, uses)
    for muscle in MUSCLES:
        for side in SIDES:
            for level in LEVELS:
                uses.setdefault((muscle, side, level), RowUse(muscle, side, level, "template", "not measured"))
    ordered = tuple(uses[(muscle, side, level)] for muscle in MUSCLES for side in SIDES for level in LEVELS)
    return replace(morphometry, muscles=tuple(rows.values())), ordered


def _split_autochthon(m: MuscleMeasure, reference: ReferenceMorphometry, rows, uses) -> None:
    parts = ("erector_spinae", "multifidus")
    if any((part, m.side, m.level) in rows for part in parts):
        return  # a measured erector spinae or multifidus wins over the merged estimate
    norms = {part: reference.csa_mm2[part][m.level] for part in parts}
    total = sum(norms.values())
    for part in parts:
        share = norms[part] / total
        key = (part, m.side, m.level)
        rows[key] = replace(m, muscle=part, csa_mm2=round(m.csa_mm2 * share, 1),
                            lean_csa_mm2=round(m.lean_csa_mm2 * share, 1))
        uses[key] = RowUse(*key, "estimated", f"{share:.0%} of the autochthon row (the template's healthy "
                                              f"{parts[0]} : {parts[1]} ratio at {m.level})", qc=m.qc)


def _iliopsoas_as_psoas(m: MuscleMeasure, rows, uses) -> None:
    key = ("psoas", m.side, m.level)
    if key in rows:
        return
    if m.level == "L5-S1":
        uses[key] = RowUse(*key, "template", "iliopsoas at L5-S1 holds the iliacus: not used as psoas")
        return
    rows[key] = replace(m, muscle="psoas")
    uses[key] = RowUse(*key, "estimated", "the iliopsoas row above the iliac crest, taken as psoas", qc=m.qc)

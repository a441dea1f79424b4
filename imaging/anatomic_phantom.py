"""Anatomic phantom: a second, independent family of synthetic lumbar Dixon MRI subjects.

Why: the toolkit's own phantom and segmenters were written together, so accuracy on that phantom
proves little. This family is written from published anatomy and from Dixon / NIfTI physics
only; every number it draws from lives, with its source, in `data/anatomic_phantom.yaml`.

The model (all lengths in patient mm; patient axes x = right, y = anterior, z = superior):

* Spine. A sagittal centre curve through the vertebral bodies, parametrised by arc length s
  (s = 0 at the centre of the S1 upper endplate). Its tilt from the patient's z axis is the sacral
  slope at S1 and loses the lumbar lordosis segment by segment (published segment shares), so
  axial slices cut the lower discs obliquely, as on real scans. Vertebrae (T12 .. S2) are
  implicit solids in the curve's local frame (u = x, v = anterior offset from the curve, s):
  bean-shaped bodies with a 1 mm cortical shell (signal void) and fatty marrow, discs (annulus,
  nucleus), pedicles, laminae, ligamentum flavum, facet joints, transverse and spinous
  processes, the canal with a CSF-filled dural sac, nerve roots and epidural fat, and the sacrum
  with its alae. Dimensions per level from Panjabi 1992 / Zhou 2000 / Zindrick 1987, scaled by
  stature and sex.
* Pelvis. Iliac wings as curved cortical/marrow plates in the axial plane whose crest height
  falls away from its highest point near L4-L5, with the iliacus inside and gluteus medius
  outside (both unlabelled).
* Trunk. An inner trunk outline (superellipse, flat back with the midline furrow between the
  paraspinal bulges) and a skin outline offset by subcutaneous fat whose thickness depends on
  direction (back, flanks, front) and habitus; supine, the belly is flattened and fat partly
  fills the lumbar hollow. Skin; thin lean layers of rectus abdominis (with the linea alba), the
  obliques and transversus, latissimus dorsi over the upper posterolateral back, the
  thoracolumbar fascia.
* Organs. Kidneys (rotated ellipsoids with sinus fat, in perirenal fat), liver and spleen tips,
  aorta / IVC and the iliac vessels, bowel loops (short randomly oriented tubes with walls and
  fluid / chyme / gas / faeces, gas anterior, packed more densely in slim subjects) and the
  ascending / descending colon; in some subjects a loop lies on the psoas with no fat plane
  between them.
* Target muscles. In each axial plane, each of psoas, quadratus lumborum (QL), erector spinae
  (ES) and multifidus (MF) per side is a rotated (super)ellipse anchored to the bony landmarks of
  that plane (body wall, transverse-process line, lamina, spinous process, back fascia). Shape
  parameters are given at the five disc planes (and interpolated in z between them); the sizes
  are calibrated at the disc planes so that each cross-sectional area (CSA) hits a drawn target
  (published mean x sex x habitus x age x subject variation; CV over subjects ~ 0.25, left and
  right differ < 10 %).
  Where two muscles' shapes overlap, the boundary is the locus of equal signed distance, and a
  fascial fat plane of drawn thickness (0 .. 3 mm, sometimes absent) separates them. Bone
  overrides muscle. ES holds a thin longissimus / iliocostalis septum (counted as ES).
* Fat. Each muscle carries a fat fraction per level (healthy ranges; caudal increase; a fatty
  atrophy draw in about 1 in 3 subjects, mostly caudal MF / ES) plus fatty streaks: a Gaussian
  random field elongated along z, thresholded.
* MR signal. Per tissue a proton density s0 and a proton-density fat fraction ff: water =
  s0 (1 - ff) S0, fat = s0 ff S0. Every voxel is sampled at 2 x 2 x 3 points (partial volume);
  a smooth coil bias field (stronger posteriorly) multiplies both channels; independent Rician
  noise is added to each magnitude channel (the background is pure noise).
* Ground truth. Labels: a voxel gets a muscle label when more than half of its sub-samples are
  that muscle; vertebral bodies (L1..L5 = 1..5, S1 = 6) likewise. Morphometry: at the axial plane
  through each disc centre the same model is evaluated on a 0.25 mm grid: CSA = area of the
  muscle, fat fraction = its mean proton-density fat fraction, lean CSA = CSA (1 - ff).
* Storage. Arrays are stored in one of several orientations (LPS, RAS, LAS, ...), with a small
  axial rotation of the patient and an arbitrary table position, so loaders must use the affine.
  The FOV (300-420 mm) is cropped to the body plus a margin; in some subjects it cuts the flanks
  (or a large belly anteriorly), as real lumbar protocols do.

Not modelled: chemical-shift / fat-water swaps, flow and motion artefacts, T1/T2* weighting
(the images are proton-density Dixon magnitudes), scoliosis, spondylolisthesis, ribs.
"""
from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import yaml

from imaging.labels import DEFAULT_VERTEBRA_LABELS, MUSCLE_LABELS
from imaging.morphometry import LEVELS, MUSCLES, SIDES, Morphometry, MuscleMeasure
from lumbar_twin import DATA_DIR

DATA_FILE = DATA_DIR / "anatomic_phantom.yaml"
HABITUS = ("slim", "average", "obese")
#: Vertebrae of the model, caudal to cranial; index = position in this tuple.
VERTS = ("S2", "S1", "L5", "L4", "L3", "L2", "L1", "T12")
VERT_LABEL = [DEFAULT_VERTEBRA_LABELS.get(name, 0) for name in VERTS]
#: Disc levels (imaging.morphometry.LEVELS order, cranial first) -> index of the vertebra below.
LEVEL_LOWER_VERT = {"L1-L2": 5, "L2-L3": 4, "L3-L4": 3, "L4-L5": 2, "L5-S1": 1}

# Tissue classes of the model (one byte per sample point).
(AIR, SKIN, SUBQ, VFAT, FFAT, FDENSE, MOTHER, CORTEX, ANNULUS, NUCLEUS, CSF, NERVE, EPIFAT, ART,
 VEN, KIDNEY, LIVER, SPLEEN, BWALL, BFLUID, BGAS, BFECES, BCHYME, JOINT, PMARROW) = range(25)
MARROW0 = 30  # + vertebra index
MUSCLE0 = 40  # + muscle label (1..8)
N_TISSUE = 50
#: (muscle, side) pairs in label order 1..8.
MUSCLE_KEYS = sorted(MUSCLE_LABELS, key=MUSCLE_LABELS.get)
SIDE_SIGN = {"left": -1.0, "right": 1.0}  # RAS: the patient's right is +x


@dataclass
class AnatomicPhantom:
    """One synthetic subject: Dixon magnitude images, label maps, ground-truth morphometry."""

    water: np.ndarray
    fat: np.ndarray
    affine: np.ndarray
    labels: np.ndarray
    vertebrae: np.ndarray
    truth: Morphometry
    params: dict[str, Any]
    seed: int
    #: The whole vertebrae (body, pedicles, laminae, processes), as SPINEPS or TotalSegmentator's
    #: vertebrae_mr label them; `vertebrae` holds the bodies only.
    vertebrae_whole: np.ndarray | None = None


@functools.cache
def _data() -> dict:
    with open(DATA_FILE) as stream:
        return yaml.safe_load(stream)


def _u(rng: np.random.Generator, lohi) -> float:
    """A uniform draw from [lo, hi] (or the value itself when it is a number)."""
    if isinstance(lohi, (int, float)):
        return float(lohi)
    lo, hi = lohi
    return float(rng.uniform(lo, hi))


def _per_level(table: dict) -> np.ndarray:
    """A {level: value} table as an array in LEVELS order (L1-L2 first)."""
    return np.array([float(table[lvl]) for lvl in LEVELS])


def _smoothstep(t):
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _sell_sdf(x, y, a, b, n: float = 2.0):
    """Approximate signed distance (mm, negative inside) to the superellipse |x/a|^n + |y/b|^n = 1.

    (rho - 1) / |grad rho| with rho the superellipse 'radius': exact for circles, first-order
    accurate near the boundary of any (super)ellipse, and monotone away from it.
    """
    ax, ay = np.abs(x) / a, np.abs(y) / b
    if n == 2.0:
        rho = np.sqrt(ax * ax + ay * ay)
        gx, gy = ax / a, ay / b
        q = np.sqrt(gx * gx + gy * gy) / np.maximum(rho, 1e-9)
    else:
        pa, pb = ax ** n, ay ** n
        rho = (pa + pb) ** (1.0 / n)
        scale = np.maximum(rho, 1e-9) ** (1.0 - n)
        gx = scale * pa / np.maximum(ax, 1e-9) / a
        gy = scale * pb / np.maximum(ay, 1e-9) / b
        q = np.sqrt(gx * gx + gy * gy)
    return (rho - 1.0) / np.maximum(q, 1.0 / np.maximum(a, b))


def _rot(x, y, cx, cy, ang_deg: float, sign: float = 1.0):
    """Coordinates relative to (cx, cy), mirrored by `sign` in x, then rotated by -ang.

    With sign = +1 (right side) a positive angle turns the local lateral axis towards anterior;
    the left side (sign = -1) is the mirror image.
    """
    dx, dy = (x - cx) * sign, y - cy
    c, s = math.cos(math.radians(ang_deg)), math.sin(math.radians(ang_deg))
    return dx * c + dy * s, -dx * s + dy * c


class _Plane:
    """One axial plane of sample points on a regular world grid, in patient coordinates.

    world = R(rot) patient + (tx, ty) with R a rotation about z. `box` returns the grid block
    that covers a patient-space rectangle and the patient coordinates of its points. The tissue
    class, muscle fat fraction and vertebra label of every point are painted in place.
    """

    def __init__(self, z: float, xw: np.ndarray, yw: np.ndarray, rot_deg: float = 0.0,
                 tx: float = 0.0, ty: float = 0.0):
        self.z, self.xw, self.yw = float(z), xw, yw
        self.c, self.s = math.cos(math.radians(rot_deg)), math.sin(math.radians(rot_deg))
        self.tx, self.ty = tx, ty
        shape = (len(xw), len(yw))
        self.tissue = np.zeros(shape, np.uint8)
        self.mff = np.zeros(shape, np.float32)  # fat fraction of muscle points
        self.vlab = np.zeros(shape, np.uint8)  # vertebral body label
        self.vwhole = np.zeros(shape, np.uint8)  # whole vertebra label (body and posterior elements)
        self._full = None

    def box(self, x0, x1, y0, y1):
        """(block slices, X, Y) for the patient rectangle [x0, x1] x [y0, y1] (None if empty)."""
        cx = np.array([x0, x1, x0, x1])
        cy = np.array([y0, y0, y1, y1])
        wx = self.c * cx - self.s * cy + self.tx
        wy = self.s * cx + self.c * cy + self.ty
        i0, i1 = np.searchsorted(self.xw, [wx.min(), wx.max()])
        j0, j1 = np.searchsorted(self.yw, [wy.min(), wy.max()])
        i1, j1 = min(i1 + 1, len(self.xw)), min(j1 + 1, len(self.yw))
        if i1 <= i0 or j1 <= j0:
            return None
        dx = (self.xw[i0:i1, None] - self.tx).astype(np.float32)
        dy = (self.yw[None, j0:j1] - self.ty).astype(np.float32)
        if self.s == 0.0:
            X, Y = np.broadcast_to(dx, (i1 - i0, j1 - j0)), np.broadcast_to(dy, (i1 - i0, j1 - j0))
        else:
            c, s = np.float32(self.c), np.float32(self.s)
            X, Y = c * dx + s * dy, -s * dx + c * dy
        return (slice(i0, i1), slice(j0, j1)), X, Y

    def full(self):
        if self._full is None:
            self._full = self.box(-1e5, 1e5, -1e5, 1e5)
        return self._full


# --------------------------------------------------------------------------------------------
# Subject parameters (all drawn from the seed; numbers and sources in data/anatomic_phantom.yaml)
# --------------------------------------------------------------------------------------------

def _draw_params(seed: int, habitus: str | None, voxel_mm, noise) -> dict[str, Any]:
    D = _data()
    rng = np.random.default_rng(seed)
    acq, sub, mr = D["acquisition"], D["subject"], D["mr"]
    # The three overridable draws come first, always, so that overriding one keeps the rest.
    hp = sub["habitus_probability"]
    h_draw = HABITUS[int(rng.choice(3, p=[hp[h] for h in HABITUS]))]
    inplane = round(_u(rng, acq["voxel_inplane_mm"]), 2)
    thick = round(_u(rng, acq["slice_mm"]), 2)
    noise_draw = _u(rng, mr["noise_fraction"]["value"])
    habitus = h_draw if habitus is None else habitus
    if habitus not in HABITUS:
        raise ValueError(f"habitus must be one of {HABITUS} or None, got {habitus!r}")
    voxel = [inplane, inplane, thick] if voxel_mm is None else [float(v) for v in voxel_mm]
    if len(voxel) != 3 or min(voxel) <= 0:
        raise ValueError(f"voxel_mm must be three positive sizes, got {voxel_mm!r}")
    P: dict[str, Any] = {"habitus": habitus, "voxel_mm": voxel,
                         "noise": noise_draw if noise is None else float(noise)}
    male = bool(rng.random() < sub["sex_male_probability"])
    sex = "male" if male else "female"
    age = _u(rng, sub["age_years"])
    hs = sub["height_mm"][sex]
    P.update(sex=sex, age=round(age, 1), height_mm=round(float(rng.normal(hs["mean"], hs["sd"])), 1),
             bmi=round(_u(rng, sub["bmi_kg_m2"][habitus]), 1))
    age01 = float(np.clip((age - 20.0) / 55.0, 0.0, 1.0))

    # Vertebrae: per-level dimensions scaled by stature and sex.
    V = D["vertebrae"]
    scale = P["height_mm"] / 1750.0 * (1.0 if male else V["female_scale"]["value"])
    scale *= math.exp(rng.normal(0.0, 0.03))
    sdv = V["sd_fraction"]["value"]
    verts = {}
    for name in ("L1", "L2", "L3", "L4", "L5", "S1"):
        f = scale * (1.0 + rng.normal(0.0, sdv * 0.5))
        cw = V["canal_width_mm"]["value"][name] * (1.0 + rng.normal(0.0, 0.07))
        verts[name] = {
            "W": V["body_width_mm"]["value"][name] / 2 * f,
            "D": V["body_depth_mm"]["value"][name] / 2 * f,
            "H": V["body_height_mm"]["value"][name] * f * (1.0 + rng.normal(0.0, 0.03)),
            "cw": cw, "cd": V["canal_depth_mm"]["value"][name] * (1.0 + rng.normal(0.0, 0.07)),
            "pw": V["pedicle_width_mm"]["value"][name] * f,
            "tp": V["transverse_process_half_span_mm"]["value"].get(name, 40.0) * f
            * (1.0 + rng.normal(0.0, 0.05)),
            "tpt": V["transverse_process_thickness_mm"]["value"].get(name, 8.0),
            "sp": V["spinous_process_length_mm"]["value"].get(name, 24.0) * f
            * (1.0 + rng.normal(0.0, 0.07)),
            "spw": V["spinous_process_width_mm"]["value"] * (1.0 + rng.normal(0.0, 0.1)),
            "lt": V["lamina_thickness_mm"]["value"] * (1.0 + rng.normal(0.0, 0.08)),
        }
    t12 = {k: v * (0.96 if k in ("W", "D") else 1.0) for k, v in verts["L1"].items()}
    t12.update(H=24.0 * scale, tp=30.0 * scale, pw=7.5 * scale)
    s2 = dict(verts["S1"], W=verts["S1"]["W"] * 0.8, D=verts["S1"]["D"] * 0.72, H=24.0 * scale,
              cw=verts["S1"]["cw"] * 0.9, cd=verts["S1"]["cd"] * 0.8)
    verts.update(T12=t12, S2=s2)
    mf = V["marrow_fat_fraction"]
    base = mf["base_at_25y"] + mf["per_year"] * (age - 25.0) + rng.normal(0.0, mf["sd"])
    marrow = {}
    for k, name in enumerate(VERTS):
        caudal = mf["caudal_increase_L1_to_L5"] * float(np.clip((6 - k) / 4.0, 0.0, 1.2))
        marrow[name] = float(np.clip(base + caudal + rng.normal(0.0, 0.015), *mf["clip"]))
    P["vertebrae"] = {n: {k: round(float(v), 3) for k, v in verts[n].items()} for n in VERTS}
    P["marrow_ff"] = {n: round(v, 3) for n, v in marrow.items()}
    P["pelvis_marrow_ff"] = round(min(0.85, marrow["S1"] + mf["pelvis_extra"]), 3)

    # Discs and alignment.
    Dd = D["discs"]
    discs, degen = {}, {}
    for lvl in LEVELS:
        h = Dd["height_mm"]["value"][lvl] * scale + rng.normal(0.0, Dd["height_mm"]["sd"])
        bad = bool(rng.random() < Dd["degeneration_probability"]["value"][lvl] * age01)
        discs[lvl] = round(max(4.0, h * (Dd["degenerated_height_factor"]["value"] if bad else 1.0)), 2)
        degen[lvl] = bad
    P.update(discs=discs, disc_degenerated=degen)
    A = D["alignment"]
    P["sacral_slope_deg"] = round(_u(rng, A["sacral_slope_supine_deg"]["value"]), 2)
    P["lordosis_deg"] = round(_u(rng, A["lordosis_L1_S1_supine_deg"]["value"]), 2)
    P["segment_share"] = A["segment_share"]["value"]
    _draw_muscles(rng, P, D["muscles"], male, age, age01)
    _draw_body(rng, P, D, male)
    return P


def _draw_muscles(rng, P, M, male: bool, age: float, age01: float) -> None:
    sex = "male" if male else "female"
    common = math.exp(rng.normal(0.0, 0.12))  # a muscular or a slight subject
    age_f = 1.0 - M["age_decline_per_year_after_40"]["value"] * max(age - 40.0, 0.0)
    base_f = M["sex_factor"]["value"][sex] * M["habitus_factor"]["value"][P["habitus"]] * age_f * common
    cv = M["cv"]["value"]
    ffM = M["fat_fraction"]
    fa = ffM["fatty_atrophy"]
    atrophy = bool(rng.random() < fa["probability"])
    if atrophy:
        sides = list(SIDES) if rng.random() < fa["both_sides_probability"] else [SIDES[int(rng.integers(2))]]
    else:
        sides = []
    target = _u(rng, fa["target"])
    cw = _per_level(fa["caudal_weight"])
    P["atrophy"] = {"present": atrophy, "sides": sides, "multifidus_ff_at_L5S1": round(target, 3)}
    level_pos = np.linspace(0.0, 1.0, len(LEVELS))  # 0 at L1-L2, 1 at L5-S1
    out = {}
    for m in MUSCLES:
        ref = _per_level(M["csa_mm2"][m])
        own = math.exp(rng.normal(0.0, math.sqrt(max(cv ** 2 - 0.12 ** 2, 0.0001))))
        jitter = np.exp(rng.normal(0.0, M["level_jitter_cv"]["value"], len(LEVELS)))
        asym = rng.uniform(-1.0, 1.0) * M["asymmetry_max"]["value"] / 2
        lo, hi = ffM["healthy"][m]
        pos = float(np.clip(0.6 * age01 + 0.4 * rng.random(), 0.0, 1.0))
        caudal = ffM["caudal_increase"][m]
        extra = ffM["female_extra"] if (not male and m in ("multifidus", "erector_spinae")) else 0.0
        for side in SIDES:
            csa = ref * base_f * own * jitter * (1.0 + (asym if side == "left" else -asym))
            ff = lo + np.clip(pos + rng.normal(0.0, 0.05), 0, 1) * (hi - lo) + caudal * (level_pos - 0.5) + extra
            patch = 0.0
            if side in sides and m in ("multifidus", "erector_spinae"):
                goal = target if m == "multifidus" else ff[-1] + (target - ff[-1]) * rng.uniform(0.4, 0.9)
                ff = ff + np.maximum(goal - ff[-1], 0.0) * cw
                csa = csa * (1.0 - (1.0 - _u(rng, fa["csa_factor"])) * cw)
                patch = rng.uniform(0.15, 0.35)
            out[f"{m}_{side}"] = {
                "csa_target_mm2": [round(float(v), 1) for v in csa],
                "ff_target": [round(float(v), 4) for v in np.clip(ff, 0.01, 0.7)],
                "streak_amplitude": round(_u(rng, ffM["streaks"]["amplitude"]), 3),
                "streak_threshold_sd": round(_u(rng, ffM["streaks"]["threshold_sd"]), 3),
                "patch_amplitude": round(float(patch), 3),
            }
    P["muscles"] = out
    fp = M["fascial_plane_mm"]
    hf = fp["habitus_factor"][P["habitus"]]
    P["fascia_mm"] = {
        "multifidus_erector": [0.0 if rng.random() < fp["absent_probability"]
                               else round(hf * _u(rng, fp["multifidus_erector"]), 2) for _ in LEVELS],
        "psoas_quadratus": [round(hf * _u(rng, fp["psoas_quadratus"]), 2) for _ in LEVELS],
        "quadratus_erector": [round(hf * _u(rng, fp["quadratus_erector"]), 2) for _ in LEVELS],
        "multifidus_midline": [round(_u(rng, fp["multifidus_midline"]), 2) for _ in LEVELS],
    }
    pg, qg = M["psoas_geometry"], M["quadratus_geometry"]
    P["geometry"] = {
        "psoas_aspect": [round(float(v), 3) for v in _per_level(pg["aspect_ap_over_ml"]) * (1 + rng.normal(0, 0.06))],
        "psoas_rotation_deg": [round(float(v), 2) for v in _per_level(pg["rotation_deg"]) + rng.normal(0, 5)],
        "psoas_ap_fraction": [round(float(v), 3) for v in
                              _per_level(pg["centre_ap_fraction_of_body_half_depth"]) + rng.normal(0, 0.1)],
        "quadratus_aspect": round(_u(rng, qg["aspect_ml_over_ap"]), 3),
        "quadratus_rotation_deg": round(_u(rng, qg["rotation_deg"]), 2),
        "multifidus_aspect": [round(float(v), 3) for v in
                              _per_level(M["multifidus_aspect_ap_over_ml"]["value"]) * (1 + rng.normal(0, 0.06))],
        "erector_septum_mm": round(_u(rng, M["erector_septum_mm"]["value"]), 2),
        "erector_septum_fraction": round(_u(rng, M["erector_septum_mm"]["lateral_fraction"]), 3),
        "erector_tilt_deg": [round(float(v), 2) for v in _per_level(M["paraspinal_geometry"]["divider_tilt_deg"])],
    }


def _draw_body(rng, P, D, male: bool) -> None:
    B, O, PV, mr, acq = D["body"], D["organs"], D["pelvis"], D["mr"], D["acquisition"]
    h = P["habitus"]
    back = _u(rng, B["subcutaneous_back_mm"]["value"][h])
    P["body"] = {
        "subq_back_mm": round(back, 2),
        "subq_lateral_mm": round(back * _u(rng, B["lateral_over_back"][h]), 2),
        "subq_anterior_mm": round(back * _u(rng, B["anterior_over_back"][h]), 2),
        "skin_mm": round(_u(rng, B["skin_mm"]["value"]), 2),
        "visceral_margin_mm": round(_u(rng, B["visceral_margin_mm"]["value"][h]), 2),
        "anterior_depth_mm": round(_u(rng, B["anterior_depth_mm"]["value"][h]), 2),
        "interior_half_width_mm": round(_u(rng, B["interior_half_width_mm"]["value"][h]), 2),
        "paraspinal_bulge_mm": round(_u(rng, B["paraspinal_bulge_mm"]["value"][h]), 2),
        "flank_bulge": round(_u(rng, B["flank_bulge_fraction"]["value"][h]), 3),
        "wall_mm": {k: round(_u(rng, v), 2) for k, v in B["abdominal_wall_mm"].items() if k != "source"},
        "latissimus_mm": round(_u(rng, B["latissimus_mm"]["value"]), 2),
        "tlf_mm": round(_u(rng, B["thoracolumbar_fascia_mm"]["value"]), 2),
        "supine_flattening": round(_u(rng, B["supine_flattening"]["value"]), 3),
    }
    k = O["kidney"]
    P["organs"] = {
        "kidney": {side: {"length": round(_u(rng, k["length_mm"]), 1), "width": round(_u(rng, k["width_mm"]), 1),
                          "thickness": round(_u(rng, k["thickness_mm"]), 1), "tilt": round(rng.uniform(10, 22), 1),
                          "hilum_deg": round(rng.uniform(25, 45), 1), "dz": round(rng.normal(0, 6), 1)}
                   for side in SIDES},
        "right_kidney_lower_mm": round(_u(rng, k["right_lower_mm"]), 1),
        "liver_tip_mm": round(_u(rng, O["liver"]["lowest_point_relative_to_L2L3_mm"]), 1),
        "liver_ff": round(_u(rng, O["liver"]["fat_fraction"]), 3),
        "spleen": bool(rng.random() < O["spleen"]["present_probability"]),
        "spleen_tip_mm": round(_u(rng, O["spleen"]["tip_relative_to_L1L2_mm"]), 1),
        "spleen_radius_mm": round(_u(rng, O["spleen"]["radius_mm"]), 1),
        "aorta_radius_mm": round(_u(rng, O["aorta"]["radius_mm"]), 2),
        "ivc_half_mm": [round(_u(rng, O["ivc"]["half_width_mm"]), 2), round(_u(rng, O["ivc"]["half_depth_mm"]), 2)],
        "bifurcation_dz_mm": round(rng.normal(0, 8), 1),
    }
    bw = O["bowel"]
    P["bowel"] = {"seed": int(rng.integers(2 ** 31)), "fill": round(_u(rng, bw["fill_fraction"][h]), 3),
                  "psoas_contact": bool(rng.random() < bw["psoas_contact_probability"])}
    sex = "male" if male else "female"
    P["pelvis"] = {
        "crest_half_width_mm": round(_u(rng, PV["intercristal_half_width_mm"]["value"][sex]), 1),
        "ala_half_width_mm": round(_u(rng, PV["sacral_ala_half_width_mm"]["value"]), 1),
        "wing_posterior_mm": round(_u(rng, PV["iliac_wing_thickness_mm"]["posterior"]), 1),
        "wing_lateral_mm": round(_u(rng, PV["iliac_wing_thickness_mm"]["lateral"]), 1),
        "iliacus_mm": round(_u(rng, PV["iliacus_max_mm"]), 1),
        "gluteus_mm": round(_u(rng, PV["gluteus_medius_max_mm"]), 1),
        "crest_top_mm": round(_u(rng, PV["iliac_crest"]["top_relative_to_L4L5_mm"]), 1),
    }
    tissues = {}
    for name, t in mr["tissues"].items():
        if name == "source":
            continue
        tissues[name] = {"s0": round(_u(rng, t["s0"]), 3), "ff": round(_u(rng, t.get("ff", 0.0)), 3)}
    tissues["liver"]["ff"] = P["organs"]["liver_ff"]
    P["mr"] = {"tissues": tissues, "S0": round(_u(rng, mr["reference_signal"]["value"]), 1),
               "bias_amplitude": round(_u(rng, mr["bias_amplitude"]["value"]), 3),
               "coil_decay_mm": round(_u(rng, mr["coil_decay_mm"]["value"]), 1),
               "bias_seed": int(rng.integers(2 ** 31)), "noise_seed": int(rng.integers(2 ** 31)),
               "streak_seed": int(rng.integers(2 ** 31))}
    orients = acq["orientations"]
    P["acquisition"] = {
        "orientation": "".join(orients[int(rng.integers(len(orients)))]),
        "rotation_deg": round(_u(rng, B["positioning_rotation_deg"]["value"]), 2),
        "table_offset_mm": [round(float(v), 1) for v in rng.uniform([-15, -60, -120], [15, 20, 120])],
        "fov_max_mm": round(_u(rng, acq["fov_mm"]), 1),
        "fov_margin_mm": round(_u(rng, acq["fov_margin_mm"]), 1),
        "clip_sides": bool(rng.random() < acq["clip_sides_probability"]),
        "sacrum_below_S1_mm": round(_u(rng, acq["sacrum_below_S1_mm"]), 1),
        "above_L1L2_fraction_of_L1": round(rng.uniform(0.55, 0.95), 3),
        "slice_phase": round(rng.random(), 3),
    }


# --------------------------------------------------------------------------------------------
# Spine: sagittal centre curve, vertebral s-ranges, local frame, landmarks in an axial plane
# --------------------------------------------------------------------------------------------

class _Spine:
    """The spine centre curve c(s) = (0, y(s), z(s)) and the vertebrae along it.

    s is arc length (mm) from the centre of the S1 upper endplate, positive cranially. phi(s) is
    the tilt of the curve's tangent from the patient's z axis (positive: running anteriorly as
    it rises). The local frame at s: tangent t = (sin phi, cos phi) and anterior normal
    n = (cos phi, -sin phi) in (y, z); a point is (u = x, v = (p - c) . n, s).
    """

    def __init__(self, P: dict):
        V = P["vertebrae"]
        self.V = [V[name] for name in VERTS]
        lo, hi = np.zeros(len(VERTS)), np.zeros(len(VERTS))
        lo[1], hi[1] = -V["S1"]["H"], 0.0
        lo[0], hi[0] = lo[1] - 1.0 - V["S2"]["H"], lo[1] - 1.0
        s, self.disc = 0.0, {}
        for k, lvl in ((2, "L5-S1"), (3, "L4-L5"), (4, "L3-L4"), (5, "L2-L3"), (6, "L1-L2"), (7, "T12-L1")):
            h = P["discs"].get(lvl, 7.0 * V["T12"]["H"] / 24.0)
            self.disc[lvl] = (s, s + h)
            s += h
            lo[k], hi[k] = s, s + self.V[k]["H"]
            s = hi[k]
        self.lo, self.hi = lo, hi
        self.mid = (lo + hi) / 2
        # Tilt: sacral slope at S1, the lordosis lost segment by segment up to the top of L1.
        ss, ll, share = P["sacral_slope_deg"], P["lordosis_deg"], P["segment_share"]
        knots_s = [0.0] + [hi[k] for k in (2, 3, 4, 5, 6)]
        cum = np.cumsum([0.0] + [share[lvl] for lvl in ("L5-S1", "L4-L5", "L3-L4", "L2-L3", "L1-L2")])
        knots_phi = ss - ll * cum / cum[-1]
        st = np.arange(-160.0, hi[7] + 80.0, 0.25)
        phi = np.interp(st, knots_s, knots_phi)
        phi = np.where(st < 0, ss + 0.2 * (-st), phi)
        ph = np.radians(phi)
        i0 = int(np.searchsorted(st, 0.0))
        y = np.concatenate([[0.0], np.cumsum(np.sin(ph[1:]) * 0.25)])
        z = np.concatenate([[0.0], np.cumsum(np.cos(ph[1:]) * 0.25)])
        self.st, self.ph, self.yt, self.zt = st, ph, y - y[i0], z - z[i0]
        self.dphi = np.gradient(ph, st)
        # Per-vertebra dimensions as continuous functions of s (knots at body centres).
        self.dims = {key: np.array([v[key] for v in self.V]) for key in self.V[0]}

    def dim(self, key: str, s):
        return np.interp(s, self.mid, self.dims[key])

    def curve(self, s):
        return (np.interp(s, self.st, self.yt), np.interp(s, self.st, self.zt),
                np.interp(s, self.st, self.ph))

    def disc_z(self, level: str) -> float:
        a, b = self.disc[level]
        return float(self.curve((a + b) / 2)[1])

    def local(self, y, z: float):
        """(s, v) of points (y, z) in one axial plane (y a 1-D array)."""
        s = np.interp(z, self.zt, self.st) * np.ones_like(y)
        for _ in range(6):
            yc, zc, ph = self.curve(s)
            dy, dz = y - yc, z - zc
            g = dy * np.sin(ph) + dz * np.cos(ph)
            v = dy * np.cos(ph) - dz * np.sin(ph)
            dg = -1.0 + np.interp(s, self.st, self.dphi) * v
            s = s - g / np.minimum(dg, -0.2)
        yc, zc, ph = self.curve(s)
        return s, (y - yc) * np.cos(ph) - (z - zc) * np.sin(ph)


class _PlaneSpine:
    """The spine's local coordinates along patient y in one axial plane, tabulated (0.2 mm)."""

    def __init__(self, spine: _Spine, z: float):
        self.sp, self.z = spine, z
        yc = float(np.interp(z, spine.zt, spine.yt))
        self.ys = np.arange(yc - 160.0, yc + 80.0, 0.2)
        self.s, self.v = spine.local(self.ys, z)

    def sv(self, Y):
        return np.interp(Y, self.ys, self.s), np.interp(Y, self.ys, self.v)

    def y_at(self, v_of_s) -> float:
        """The y of the plane point whose local v equals v_of_s(s) (a landmark depth)."""
        diff = self.v - v_of_s(self.s)
        j = int(np.clip(np.searchsorted(diff, 0.0), 1, len(diff) - 1))
        d0, d1 = diff[j - 1], diff[j]
        return float(self.ys[j - 1] + (self.ys[j] - self.ys[j - 1]) * (-d0) / (d1 - d0 + 1e-12))

    def s_at(self, y: float) -> float:
        return float(np.interp(y, self.ys, self.s))


def _canal_centre(sp: _Spine, s):
    return -(sp.dim("D", s) + 0.5 + sp.dim("cd", s) / 2)


def _landmarks(sp: _Spine, z: float) -> dict[str, float]:
    """Axial-plane landmarks at height z: y of body front/centre/back, canal back, lamina back,
    transverse-process line and spinous tip, and lateral sizes at those depths."""
    ps = _PlaneSpine(sp, z)
    L = {"ps": ps}
    L["yb"] = ps.y_at(lambda s: 0.0 * s)
    L["yf"] = ps.y_at(lambda s: sp.dim("D", s))
    L["ybb"] = ps.y_at(lambda s: -sp.dim("D", s))
    L["ycb"] = ps.y_at(lambda s: _canal_centre(sp, s) - sp.dim("cd", s) / 2)
    L["ylam"] = ps.y_at(lambda s: _canal_centre(sp, s) - sp.dim("cd", s) / 2 - sp.dim("lt", s))
    L["ytp"] = ps.y_at(lambda s: -(sp.dim("D", s) + 0.5 + 0.5 * sp.dim("cd", s)))
    L["ysp"] = ps.y_at(lambda s: _canal_centre(sp, s) - sp.dim("cd", s) / 2 - sp.dim("lt", s) - sp.dim("sp", s))
    s_b = ps.s_at(L["yb"])
    L["s"] = s_b
    L["W"] = float(sp.dim("W", s_b))
    L["D"] = (L["yf"] - L["ybb"]) / 2
    s_tp = ps.s_at(L["ytp"])
    L["tp"] = float(sp.dim("tp", s_tp))
    L["tpt"] = float(sp.dim("tpt", s_tp))
    L["spw"] = float(sp.dim("spw", ps.s_at(L["ysp"])))
    return L


# --------------------------------------------------------------------------------------------
# The subject model: geometry shared by all planes
# --------------------------------------------------------------------------------------------

class _Model:
    def __init__(self, P: dict):
        self.P = P
        self.sp = sp = _Spine(P)
        self.zk = np.array([sp.disc_z(lvl) for lvl in LEVELS])  # disc planes, cranial first
        acq = P["acquisition"]
        self.z_min = float(sp.curve(0.0)[1]) - acq["sacrum_below_S1_mm"]
        self.z_max = float(sp.curve(sp.lo[6] + acq["above_L1L2_fraction_of_L1"] * sp.V[6]["H"])[1])
        self.z_max = max(self.z_max, self.zk[0] + 8.0)
        self.k = {lab: np.ones(len(LEVELS)) for lab in range(1, 9)}  # CSA calibration factors
        self.crest_top = float(self.zk[3] + P["pelvis"]["crest_top_mm"])
        self.tissue_s0 = np.zeros(N_TISSUE, np.float32)
        self.tissue_ff = np.zeros(N_TISSUE, np.float32)
        T = P["mr"]["tissues"]
        for tid, name in ((SKIN, "skin"), (SUBQ, "subcutaneous_fat"), (VFAT, "visceral_fat"), (FFAT, "fascia_fat"),
                          (FDENSE, "fascia_dense"), (MOTHER, "muscle_other"), (CORTEX, "cortex"),
                          (ANNULUS, "disc_annulus"), (NUCLEUS, "disc_nucleus"), (CSF, "csf"), (NERVE, "nerve"),
                          (EPIFAT, "subcutaneous_fat"), (ART, "blood"), (VEN, "blood"), (KIDNEY, "kidney"),
                          (LIVER, "liver"), (SPLEEN, "liver"), (BWALL, "bowel_wall"), (BFLUID, "bowel_fluid"),
                          (BGAS, "bowel_gas"), (BFECES, "bowel_feces"), (BCHYME, "bowel_chyme"), (JOINT, "csf")):
            self.tissue_s0[tid], self.tissue_ff[tid] = T[name]["s0"], T[name]["ff"]
        self.tissue_s0[VEN] *= 0.8  # slower venous flow, a little darker than the aorta
        self.tissue_ff[SPLEEN] = 0.01  # liver-like proton density, but no steatosis
        self.tissue_s0[PMARROW], self.tissue_ff[PMARROW] = T["marrow"]["s0"], P["pelvis_marrow_ff"]
        for k, name in enumerate(VERTS):
            self.tissue_s0[MARROW0 + k], self.tissue_ff[MARROW0 + k] = T["marrow"]["s0"], P["marrow_ff"][name]
        self.tissue_s0[MUSCLE0:MUSCLE0 + 9] = 1.0
        self._lm_cache: dict[float, dict] = {}
        _init_streaks(self)
        _init_organs(self)

    def kz(self, z: float, values) -> float:
        """A per-level quantity (LEVELS order) interpolated at height z (constant beyond the ends)."""
        return float(np.interp(z, self.zk[::-1], np.asarray(values, float)[::-1]))

    def landmarks(self, z: float) -> dict:
        key = round(z, 4)
        if key not in self._lm_cache:
            if len(self._lm_cache) > 4096:
                self._lm_cache.clear()
            self._lm_cache[key] = _landmarks(self.sp, z)
        return self._lm_cache[key]


def _outline(M: _Model, z: float, L: dict) -> dict:
    """Trunk outline parameters in the plane at z (see _paint_body)."""
    B = M.P["body"]
    hw = B["interior_half_width_mm"] * (1.0 - 0.03 * math.exp(-((z - M.zk[1]) / 40.0) ** 2))
    pel = (M.P["pelvis"]["crest_half_width_mm"] + 16.0) * float(_smoothstep((M.crest_top + 30.0 - z) / 40.0))
    # The paraspinal muscles follow the spine. Supine on the table the belly is flattened, and
    # subcutaneous fat partly fills the lumbar hollow (more so the more fat there is).
    Lm, Ls = M.landmarks(float(M.zk[2])), M.landmarks(float(M.zk[-1]))
    lam = B["supine_flattening"]
    yb_in = L["ysp"] - B["paraspinal_bulge_mm"]
    yf_in = L["yf"] - lam * (L["yf"] - Lm["yf"]) + B["anterior_depth_mm"] + B["wall_mm"]["rectus"]
    tb = B["subq_back_mm"]
    tb += lam * tb / (tb + 15.0) * max(L["ysp"] - Ls["ysp"], 0.0)
    return {"A": max(hw, pel), "y0": 0.5 * (yb_in + yf_in), "Bb": 0.5 * (yf_in - yb_in),
            "Bf": 0.5 * (yf_in - yb_in), "yb_in": yb_in, "yf_in": yf_in, "tb": tb}


def _paint_body(M: _Model, pl: _Plane, L: dict) -> dict:
    """Skin, subcutaneous fat, the trunk interior (visceral fat), abdominal wall, latissimus, TLF.

    Returns full-plane arrays the later painters need: depth below the inner trunk outline
    (`delta`, mm) and the depth at which the paraspinal muscles begin (`clip`).
    """
    B, O = M.P["body"], _outline(M, pl.z, L)
    sl, X, Y = pl.full()
    ax, dy = np.abs(X), Y - O["y0"]
    r = np.hypot(ax, dy) + 1e-6
    c, s = ax / r, dy / r
    post = s < 0
    ca, sb, sf = (c / O["A"]) ** 2, (s / O["Bb"]) ** 2, (s / O["Bf"]) ** 2
    r0 = np.where(post, 1.0 / np.sqrt(np.sqrt(ca * ca + sb * sb)), 1.0 / np.sqrt(ca + sf))  # n = 4 / 2
    xb = r0 * c
    w_post = np.where(post, s * s, 0.0)
    bulge = B["paraspinal_bulge_mm"]
    r_in = r0 - bulge * np.exp(-(xb / 11.0) ** 2) * w_post
    tl = B["subq_lateral_mm"]
    t = np.where(post, tl + (O["tb"] - tl) * s * s, tl + (B["subq_anterior_mm"] - tl) * s * s)
    theta = np.arctan2(dy, ax)
    t = t + B["flank_bulge"] * tl * np.exp(-((theta + 0.45) / 0.35) ** 2)
    r_skin = r0 + t - 0.35 * bulge * np.exp(-(xb / 18.0) ** 2) * w_post
    tis = pl.tissue
    tis[r < r_skin] = SUBQ
    tis[(r < r_skin) & (r > r_skin - B["skin_mm"])] = SKIN
    tis[r < r_in] = VFAT
    delta = r_in - r
    W = B["wall_mm"]
    tap = lambda x: np.clip(x / 0.15, 0.0, 1.0)  # noqa: E731
    x_rect = 0.5 * O["A"]
    front = theta > 0.3
    tis[front & (ax > 5) & (ax < x_rect) & (delta > 0)
        & (delta < W["rectus"] * np.clip((x_rect - ax) / 15.0, 0.3, 1.0))] = MOTHER
    tis[front & (ax <= 5) & (delta > 0) & (delta < 2.5)] = FDENSE
    side = (ax > x_rect - 5) & (theta < 1.45)
    d0 = 0.0
    for name, start in (("external_oblique", -0.25), ("internal_oblique", -0.45), ("transversus", -0.6)):
        th = W[name] * tap(theta - start)
        tis[side & (delta > d0) & (delta < d0 + th)] = MOTHER
        d0 += W[name] + 1.0
    # Latissimus dorsi over the posterolateral back, from the top of the FOV down to ~L3-L4.
    zf = float(np.clip((pl.z - M.zk[2]) / max(M.zk[0] - M.zk[2], 1.0), 0.0, 1.0)) ** 0.7
    t_ld = B["latissimus_mm"] * zf * tap(theta + 1.35) * tap(-0.3 - theta) * (ax > 30)
    tis[(t_ld > 0.3) & (delta > 0) & (delta < t_ld)] = MOTHER
    back = theta < -0.3
    tis[back & (delta >= t_ld) & (delta < t_ld + B["tlf_mm"])] = FDENSE
    clip = np.where(back, t_ld + B["tlf_mm"], 0.0)
    return {"delta": delta, "clip": clip, "outline": O, "theta": theta}


# --------------------------------------------------------------------------------------------
# Organs: kidneys, liver, spleen, vessels, bowel
# --------------------------------------------------------------------------------------------

def _init_streaks(M: _Model) -> None:
    rng = np.random.default_rng(M.P["mr"]["streak_seed"])
    cl = _data()["muscles"]["fat_fraction"]["streaks"]["correlation_mm"]
    M.waves = []
    for ell in ((cl["inplane"], cl["inplane"], cl["axial"]), (8.0, 8.0, 20.0)):
        k = rng.normal(0.0, 1.0, (16, 3)) / np.array(ell)
        M.waves.append((k.astype(np.float32), rng.uniform(0, 2 * np.pi, 16).astype(np.float32)))
    zq = np.linspace(-6, 6, 4001)
    wq = np.exp(-zq ** 2 / 2)
    wq /= wq.sum()
    M.streak_mean = lambda thr, width: float(np.sum(wq * np.clip((zq - thr) / width, 0, 1)))  # noqa: E731


def _field(M: _Model, which: int, X, Y, z: float):
    k, ph = M.waves[which]
    X, Y = np.asarray(X, np.float32), np.asarray(Y, np.float32)
    out = np.zeros(X.shape, np.float32)
    for i in range(len(ph)):
        out += np.cos(k[i, 0] * X + k[i, 1] * Y + np.float32(k[i, 2] * z + ph[i]))
    return out * np.float32(math.sqrt(2.0 / len(ph)))


def _kidney_frame(sign: float, tilt_deg: float, hilum_deg: float):
    t = math.radians(tilt_deg)
    e1 = np.array([-sign * math.sin(t), -math.sin(0.8 * t), 1.0])
    e1 /= np.linalg.norm(e1)  # long axis: the upper pole medial and posterior
    med = np.array([-sign, 0.0, 0.0])
    med -= med.dot(e1) * e1
    med /= np.linalg.norm(med)
    ant = np.cross(e1, med) * (-sign)
    ant /= np.linalg.norm(ant)
    h = math.radians(hilum_deg)
    e2 = math.cos(h) * med + math.sin(h) * ant  # towards the hilum: anteromedial
    return np.stack([e1, e2, np.cross(e1, e2)])


def _init_organs(M: _Model) -> None:
    P, O = M.P, M.P["organs"]
    rng = np.random.default_rng(P["bowel"]["seed"])
    Lk = M.landmarks(float(M.zk[0]))
    ql = P["muscles"]["quadratus_lumborum_left"]["csa_target_mm2"][0]
    b_ql = math.sqrt(ql / (math.pi * P["geometry"]["quadratus_aspect"]))
    M.kidneys = []
    for side in SIDES:
        k, sg = O["kidney"][side], SIDE_SIGN[side]
        c = np.array([sg * (Lk["tp"] + 0.35 * k["width"] + 8.0),
                      Lk["ytp"] + Lk["tpt"] / 2 + 2 * b_ql + 0.5 * k["thickness"] + 3.0,
                      M.zk[0] + 12.0 + k["dz"] - (O["right_kidney_lower_mm"] if side == "right" else 0.0)])
        M.kidneys.append((c, _kidney_frame(sg, k["tilt"], k["hilum_deg"]),
                          np.array([k["length"], k["width"], k["thickness"]]) / 2))
    sp = M.sp
    M.z_bif = float(sp.curve(sp.mid[3])[1]) + O["bifurcation_dz_mm"]
    M.z_conf = float(sp.curve(sp.mid[2])[1]) + 0.5 * O["bifurcation_dz_mm"] - 4.0
    # Bowel: non-overlapping spheres in the peritoneal cavity, then the two colons.
    bw = _data()["organs"]["bowel"]
    probs = bw["content_probability"]
    kinds = [BFLUID, BCHYME, BGAS, BFECES]
    pk = np.array([probs["fluid"], probs["chyme"], probs["gas"], probs["feces"]])
    spheres, vol = [], 0.0
    z0, z1 = M.z_min - 15.0, M.z_max + 15.0
    margin = P["body"]["visceral_margin_mm"]
    cav = 0.0
    for z in np.linspace(z0, z1, 9):
        L, Ot = M.landmarks(float(z)), _outline(M, float(z), M.landmarks(float(z)))
        cav += 0.8 * 2 * (Ot["A"] - 22.0) * max(Ot["yf_in"] - 16.0 - L["yf"] - 0.3 * margin, 5.0) * (z1 - z0) / 9
    vol_goal = P["bowel"]["fill"] * cav
    pts = np.zeros((0, 5, 3))  # five points along each accepted loop, for the overlap test
    radii = np.zeros(0)
    for _ in range(5000):
        z = rng.uniform(z0, z1)
        zq = 2.0 * round(z / 2.0)  # landmarks on a 2 mm raster: only ranges are needed here
        L = M.landmarks(zq)
        Ot = _outline(M, zq, L)
        r = _u(rng, bw["small_bowel_radius_mm"])
        ylo, yhi = L["yf"] + 0.3 * margin + r, Ot["yf_in"] - 16.0 - 0.5 * r
        if yhi <= ylo:
            continue
        y = rng.uniform(ylo, yhi)
        x = rng.uniform(-1, 1) * (Ot["A"] - 22.0 - r) * math.sqrt(max(0.0, 1 - ((y - Ot["y0"]) / Ot["Bf"]) ** 2))
        half = rng.uniform(0.0, 25.0)  # loops are short tubes (capsules) of any direction
        d = rng.normal(0.0, 1.0, 3)
        d *= half / max(np.linalg.norm(d), 1e-9)
        own = np.array([x, y, z]) + np.linspace(-1, 1, 5)[:, None] * d
        if len(radii):
            gap = np.sqrt(((pts[:, :, None, :] - own[None, None, :, :]) ** 2).sum(-1)).min((1, 2))
            if np.any(gap < 0.72 * (radii + r)):
                continue
        kind = kinds[int(rng.choice(4, p=pk / pk.sum()))]
        level = rng.uniform(-0.3, 0.5) * r if rng.random() < bw["air_fluid_level_probability"] else None
        spheres.append((x, y, z, r, _u(rng, bw["wall_mm"]), kind, level, half, tuple(d)))
        pts = np.concatenate([pts, own[None]])
        radii = np.append(radii, r)
        vol += math.pi * r * r * 2 * half + 4.0 / 3.0 * math.pi * r ** 3
        if vol >= vol_goal:
            break
    M.spheres = spheres
    M.colons = [(sg, _u(rng, bw["colon_radius_mm"]), _u(rng, bw["wall_mm"]), rng.uniform(0, 2 * np.pi),
                 rng.uniform(0.1, 1.3), [BFECES, BCHYME, BFLUID][int(rng.integers(3))]) for sg in (1.0, -1.0)]


def _capsule_paint(pl: _Plane, c, d, z: float, r, value, where=None, above=None) -> None:
    """Paint the section of the capsule {p: dist(p, segment c +- d) < r}; `above`: only Y > above."""
    c, d = np.asarray(c, float), np.asarray(d, float)
    a, b = c - d, c + d
    if z < min(a[2], b[2]) - r or z > max(a[2], b[2]) + r:
        return
    got = pl.box(min(a[0], b[0]) - r, max(a[0], b[0]) + r, min(a[1], b[1]) - r, max(a[1], b[1]) + r)
    if got is None:
        return
    sl, X, Y = got
    ab = b - a
    L2 = max(float(ab @ ab), 1e-9)
    tt = np.clip(((X - a[0]) * ab[0] + (Y - a[1]) * ab[1] + (z - a[2]) * ab[2]) / L2, 0.0, 1.0)
    m = (X - a[0] - tt * ab[0]) ** 2 + (Y - a[1] - tt * ab[1]) ** 2 + (z - a[2] - tt * ab[2]) ** 2 < r * r
    if where is not None:
        m &= where[sl]
    if above is not None:
        m &= Y > above
    pl.tissue[sl][m] = value


def _disc_paint(pl: _Plane, cx, cy, r, value, where=None, inside=None):
    got = pl.box(cx - r, cx + r, cy - r, cy + r)
    if got is None:
        return
    sl, X, Y = got
    m = (X - cx) ** 2 + (Y - cy) ** 2 < r * r
    if where is not None:
        m &= where[sl]
    if inside is not None:
        m &= inside(X, Y)
    pl.tissue[sl][m] = value


def _paint_organs(M: _Model, pl: _Plane, L: dict, body: dict) -> None:
    P, O = M.P, body["outline"]
    z = pl.z
    Wm = P["body"]["wall_mm"]
    cavity = body["delta"] > (Wm["external_oblique"] + Wm["internal_oblique"] + Wm["transversus"] + 4.0)
    for (x, y, zc, R, wall, kind, level, half, d) in M.spheres:
        if abs(z - zc) >= R + abs(d[2]):
            continue
        _capsule_paint(pl, (x, y, zc), d, z, R, BWALL, cavity)
        _capsule_paint(pl, (x, y, zc), d, z, R - wall, kind, cavity)
        if level is not None:
            _capsule_paint(pl, (x, y, zc), d, z, R - wall, BGAS, cavity, above=y + level)
    for sg, R, wall, ph, gas, content in M.colons:
        x = sg * (0.62 * O["A"] - 0.1 * R) + 4.0 * math.sin(z / 23.0 + ph)
        y = L["yb"] + (15.0 if sg > 0 else 8.0) + 0.3 * R + 5.0 * math.cos(z / 31.0 + ph)
        Rz = R * (0.85 + 0.15 * math.sin(z / 9.0 + 2 * ph))  # haustra
        _disc_paint(pl, x, y, Rz, BWALL, cavity)
        _disc_paint(pl, x, y, Rz - wall, content, cavity)
        if gas < 1.0:
            _disc_paint(pl, x, y, Rz - wall, BGAS, cavity, lambda X, Y, yl=y + gas * Rz: Y > yl)
    Org = P["organs"]
    z_liver = M.zk[1] + Org["liver_tip_mm"]
    if z > z_liver:
        R = 0.62 * O["A"] * math.sqrt(min(1.0, (z - z_liver) / 60.0))
        _disc_paint(pl, 0.5 * O["A"], L["yb"] + 30.0, R, LIVER, cavity)
    z_spl = M.zk[0] + Org["spleen_tip_mm"]
    if Org["spleen"] and z > z_spl:
        R = Org["spleen_radius_mm"] * math.sqrt(min(1.0, (z - z_spl) / 40.0))
        _disc_paint(pl, -0.62 * O["A"], L["yb"] + 2.0, R, SPLEEN, cavity)
    for c, E, ax in M.kidneys:
        dz = z - c[2]
        reach = float(np.max(ax)) + 14.0
        if abs(dz) > reach:
            continue
        got = pl.box(c[0] - reach, c[0] + reach, c[1] - reach, c[1] + reach)
        if got is None:
            continue
        sl, X, Y = got
        dx, dy = X - c[0], Y - c[1]
        l1, l2, l3 = (E[i, 0] * dx + E[i, 1] * dy + E[i, 2] * dz for i in range(3))
        g = (l1 / ax[0]) ** 2 + (l2 / ax[1]) ** 2 + (l3 / ax[2]) ** 2
        gf = (l1 / (ax[0] + 12)) ** 2 + (l2 / (ax[1] + 10)) ** 2 + (l3 / (ax[2] + 10)) ** 2
        sinus = (l1 / (0.4 * ax[0])) ** 2 + ((l2 - 0.75 * ax[1]) / (0.5 * ax[1])) ** 2 + (l3 / (0.35 * ax[2])) ** 2
        t = pl.tissue[sl]
        t[gf < 1] = VFAT
        t[g < 1] = KIDNEY
        t[(g < 1) & (sinus < 1)] = VFAT
    # Great vessels in front of the spine; iliac vessels below the bifurcation / confluence.
    yf, W = L["yf"], L["W"]
    ra = Org["aorta_radius_mm"]
    xa = -(0.3 * W + 2.0)
    if z > M.z_bif:
        _disc_paint(pl, xa, yf + ra + 1.5, ra, ART)
    else:
        d, r = 4.0 + 0.55 * (M.z_bif - z), 0.62 * ra
        for sgn in (-1.0, 1.0):
            _disc_paint(pl, xa + sgn * d, yf + r + 3.0 + 0.2 * (M.z_bif - z), r, ART)
    hw, hd = Org["ivc_half_mm"]
    xv = 0.45 * W + 0.6 * hw
    if z > M.z_conf:
        got = pl.box(xv - hw, xv + hw, yf + 1.5, yf + 1.5 + 2 * hd)
        if got is not None:
            sl, X, Y = got
            pl.tissue[sl][((X - xv) / hw) ** 2 + ((Y - yf - 1.5 - hd) / hd) ** 2 < 1] = VEN
    else:
        d = 3.0 + 0.5 * (M.z_conf - z)
        for sgn in (-1.0, 1.0):
            _disc_paint(pl, xv + sgn * d - 0.3 * hw, yf + 8.0, 6.5, VEN)


# --------------------------------------------------------------------------------------------
# Target muscles: shapes anchored to the landmarks, competition with fascial planes, fat
# --------------------------------------------------------------------------------------------

def _muscle_shapes(M: _Model, z: float, L: dict, O: dict) -> dict[int, tuple]:
    """label -> (cx, cy, a, b, angle_deg, exponent, side_sign, clipped_by_back_fascia)."""
    P, G = M.P, M.P["geometry"]
    out = {}
    for side in SIDES:
        sg = SIDE_SIGN[side]

        def area(m):
            lab = MUSCLE_LABELS[(m, side)]
            return lab, M.kz(z, np.asarray(P["muscles"][f"{m}_{side}"]["csa_target_mm2"]) * M.k[lab])

        lab, A = area("psoas")
        A *= float(np.clip(1.0 - (z - M.zk[0]) / 40.0, 0.04, 1.0))
        q, r = M.kz(z, G["psoas_aspect"]), M.kz(z, G["psoas_rotation_deg"])
        a = math.sqrt(A / (math.pi * q))
        b = q * a
        a_eff = math.hypot(a * math.cos(math.radians(r)), b * math.sin(math.radians(r)))
        out[lab] = (sg * (L["W"] + 0.8 * a_eff), L["yb"] + M.kz(z, G["psoas_ap_fraction"]) * L["D"],
                    a, b, -r, 2.0, sg, False)
        lab, A = area("quadratus_lumborum")
        A *= float(np.clip(1.0 - (M.zk[-1] - z) / 15.0, 0.0, 1.0))
        if A > 4.0:
            m_, r = G["quadratus_aspect"], G["quadratus_rotation_deg"]
            b = math.sqrt(A / (math.pi * m_))
            a = m_ * b
            cr, sr = math.cos(math.radians(r)), math.sin(math.radians(r))
            out[lab] = (sg * (L["tp"] - 3.0 + a * cr), L["ytp"] + L["tpt"] / 2 + 0.35 * b + 0.5 * a * sr,
                        a, b, r, 2.0, sg, False)
        lab, A = area("multifidus")
        q = M.kz(z, G["multifidus_aspect"])
        a_mf = math.sqrt(A / (math.pi * q))
        b = q * a_mf
        out[lab] = (sg * (L["spw"] / 2 + 0.85 * a_mf), L["ylam"] - 0.6 * b, a_mf, b, 0.0, 2.0, sg, True)
        lab, A = area("erector_spinae")
        y_f = L["ytp"] - L["tpt"] / 2 + 1.5
        b = max((y_f - O["yb_in"]) / 2 + 3.0, 8.0)
        a = A / (3.3 * b)
        out[lab] = (sg * (L["spw"] / 2 + 1.5 * a_mf + 0.7 * a), 0.5 * (y_f + O["yb_in"]), a, b,
                    M.kz(z, G["erector_tilt_deg"]), 2.6, sg, True)
    return out


def _fascia_matrix(M: _Model, z: float) -> np.ndarray:
    F = M.P["fascia_mm"]
    T = np.full((9, 9), 1.0)
    for side in SIDES:
        lab = {m: MUSCLE_LABELS[(m, side)] for m in MUSCLES}
        for m1, m2, key in (("multifidus", "erector_spinae", "multifidus_erector"),
                            ("psoas", "quadratus_lumborum", "psoas_quadratus"),
                            ("quadratus_lumborum", "erector_spinae", "quadratus_erector")):
            T[lab[m1], lab[m2]] = T[lab[m2], lab[m1]] = M.kz(z, F[key])
    l, r = MUSCLE_LABELS[("multifidus", "left")], MUSCLE_LABELS[("multifidus", "right")]
    T[l, r] = T[r, l] = M.kz(z, F["multifidus_midline"])
    return T


def _paint_muscles(M: _Model, pl: _Plane, L: dict, body: dict) -> dict[int, tuple]:
    shapes = _muscle_shapes(M, pl.z, L, body["outline"])
    ext = {lab: 1.1 * max(s[2], s[3]) + 4.0 for lab, s in shapes.items()}  # superellipse corners
    boxes = {lab: (s[0] - ext[lab], s[0] + ext[lab], s[1] - ext[lab], s[1] + ext[lab]) for lab, s in shapes.items()}
    ub = [min(b[0] for b in boxes.values()), max(b[1] for b in boxes.values()),
          min(b[2] for b in boxes.values()), max(b[3] for b in boxes.values())]
    got = pl.box(*ub)
    if got is None:
        return shapes
    usl, UX, UY = got
    sdf = np.full((9,) + UX.shape, 1e3, np.float32)
    for lab, (cx, cy, a, b, ang, n, sg, clipped) in shapes.items():
        g = pl.box(*boxes[lab])
        if g is None:
            continue
        sl, X, Y = g
        sub = (slice(sl[0].start - usl[0].start, sl[0].stop - usl[0].start),
               slice(sl[1].start - usl[1].start, sl[1].stop - usl[1].start))
        u, w = _rot(X, Y, cx, cy, ang, sg)
        d = _sell_sdf(u, w, a, b, n)
        if clipped:
            d = np.maximum(d, body["clip"][sl] - body["delta"][sl])
        sdf[lab][sub] = d
    sdf[0] = 1e3
    best = np.argmin(sdf, axis=0)
    d1 = np.take_along_axis(sdf, best[None], 0)[0]
    np.put_along_axis(sdf, best[None], 1e4, 0)
    second = np.argmin(sdf, axis=0)
    d2 = np.take_along_axis(sdf, second[None], 0)[0]
    T = _fascia_matrix(M, pl.z)
    inside = d1 < 0
    band = inside & (d2 - d1 < T[best, second])
    musc = inside & ~band
    t = pl.tissue[usl]
    mid = band & (np.minimum(best, second) == MUSCLE_LABELS[("multifidus", "left")]) & \
        (np.maximum(best, second) == MUSCLE_LABELS[("multifidus", "right")])
    t[band] = FFAT
    t[mid] = FDENSE
    t[musc] = MUSCLE0 + best[musc]
    # Fat fraction of every muscle point: the level's base plus streaks (and atrophy patches).
    X, Y, lab = UX[musc], UY[musc], best[musc]
    f1 = _field(M, 0, X, Y, pl.z)
    f2 = _field(M, 1, X, Y, pl.z)
    ff = np.zeros(X.shape, np.float32)
    G = M.P["geometry"]
    for (m, side), value in MUSCLE_LABELS.items():
        sel = lab == value
        if not sel.any():
            continue
        Pm = M.P["muscles"][f"{m}_{side}"]
        amp, thr, pa = Pm["streak_amplitude"], Pm["streak_threshold_sd"], Pm["patch_amplitude"]
        base = M.kz(pl.z, Pm["ff_target"]) - amp * M.streak_mean(thr, 0.6) - pa * M.streak_mean(1.0, 0.8)
        v = max(base, 0.005) + amp * np.clip((f1[sel] - thr) / 0.6, 0, 1) + pa * np.clip((f2[sel] - 1.0) / 0.8, 0, 1)
        if m == "erector_spinae":  # the longissimus / iliocostalis septum: fat, counted as ES
            cx, cy, a, b, ang, n, sg, _ = shapes[value]
            u, w = _rot(X[sel], Y[sel], cx, cy, ang, sg)
            ca, sa = math.cos(math.radians(15)), math.sin(math.radians(15))
            sep = np.abs((u - G["erector_septum_fraction"] * a) * ca + w * sa) < G["erector_septum_mm"] / 2
            v = np.where(sep, M.tissue_ff[FFAT], v)
        ff[sel] = v
    mff = pl.mff[usl]
    mff[musc] = np.clip(ff, 0.0, 0.95)
    return shapes


def _pelvis_geom(M: _Model):
    if not hasattr(M, "_pel"):
        Pp, Lr = M.P["pelvis"], M.landmarks(float(M.zk[-1]))
        Rx = 0.45 * Pp["crest_half_width_mm"]
        xc = Pp["crest_half_width_mm"] - Rx
        yc = Lr["yb"] + 12.0
        a0 = -math.acos(float(np.clip((Pp["ala_half_width_mm"] - 5.0 - xc) / Rx, -0.95, 0.2)))
        Ry = (yc - (Lr["ylam"] - 10.0)) / abs(math.sin(a0))
        a1, at = 0.96, -0.26
        M._pel = dict(Rx=Rx, xc=xc, yc=yc, Ry=Ry, a0=a0, a1=a1, at=at,
                      kp=40.0 / (at - a0) ** 2, ka=45.0 / (a1 - at) ** 2)
    return M._pel


def _paint_pelvis(M: _Model, pl: _Plane, body: dict, bone: bool) -> None:
    """Iliac wings (bone=True) or the iliacus and gluteus medius around them (bone=False)."""
    g, Pp = _pelvis_geom(M), M.P["pelvis"]
    z = pl.z
    if z >= M.crest_top:
        return
    for sg in (-1.0, 1.0):
        got = pl.box(sg * g["xc"] - g["Rx"] - 45, sg * g["xc"] + g["Rx"] + 45, g["yc"] - g["Ry"] - 45,
                     g["yc"] + g["Ry"] + 45)
        if got is None:
            continue
        sl, X, Y = got
        u, w = sg * (X - sg * g["xc"]), Y - g["yc"]
        al = np.arctan2(w / g["Ry"], u / g["Rx"])
        d = _sell_sdf(u, w, g["Rx"], g["Ry"])
        zc = M.crest_top - np.where(al < g["at"], g["kp"], g["ka"]) * (al - g["at"]) ** 2
        below = zc - z
        valid = (al > g["a0"]) & (al < g["a1"]) & (below > 0)
        h = 0.5 * (Pp["wing_lateral_mm"] + (Pp["wing_posterior_mm"] - Pp["wing_lateral_mm"])
                   * _smoothstep((-al - 0.5) / 1.2))
        he = h * np.sqrt(np.clip(below / h, 0.0, 1.0))
        t = pl.tissue[sl]
        if bone:
            b = valid & (np.abs(d) < he)
            t[b] = PMARROW
            t[b & ((np.abs(d) > he - 1.2) | (below < 1.2))] = CORTEX
        else:
            inner = body["delta"][sl] > 1.0
            t_il = np.minimum(Pp["iliacus_mm"], 2.0 + 0.5 * below)
            t[valid & inner & (al > -0.9) & (d < -he) & (d > -he - t_il)] = MOTHER
            t_gl = np.minimum(Pp["gluteus_mm"], 2.0 + 0.6 * below)
            t[inner & (below > 0) & (al > g["a0"] - 0.15) & (al < 0.6) & (d > he) & (d < he + t_gl)] = MOTHER


# --------------------------------------------------------------------------------------------
# Vertebrae, discs, sacrum and the canal, in the spine's local frame (u = x, v, s)
# --------------------------------------------------------------------------------------------

def _vertebra_sdf(M: _Model, k: int, u, v, s):
    """(body sdf, posterior-elements sdf, facet-joint mask) of vertebra k at local points."""
    sp, dm = M.sp, M.sp.V[k]
    lo, hi = sp.lo[k], sp.hi[k]
    H, W, D = hi - lo, dm["W"], dm["D"]
    cw, cd, lt, pw = dm["cw"], dm["cd"], dm["lt"], dm["pw"]
    au = np.abs(u)
    f = np.clip((s - lo) / H, 0.0, 1.0)
    e = _sell_sdf(u, v, W * (1.0 - 0.2 * f * (1.0 - f)), D)
    rc = 0.8 * W
    conc = rc - np.hypot(u, v + D + rc - 0.1 * D)
    body = np.maximum(np.maximum(e, conc), np.maximum(lo - s, s - hi))
    vcc = -(D + 0.5 + cd / 2)
    ce = _sell_sdf(u, v - vcc, cw / 2, cd / 2)
    post = np.full(u.shape, 1e3, np.float32)
    joint = np.zeros(u.shape, bool)
    if k >= 2:  # lumbar (and T12) posterior arch
        ped = np.maximum(_sell_sdf(au - (cw / 2 + 0.45 * pw), s - (lo + 0.62 * H), 0.5 * pw, 0.3 * H),
                         np.maximum(v + 0.5 * D, (vcc - 0.1 * cd) - v))
        lam = np.maximum.reduce([-ce, ce - lt, v - (vcc - 0.1 * cd), au - (cw / 2 + 0.9 * pw),
                                 lo - 0.35 * H - s, s - (lo + 0.8 * H)])
        v0 = vcc - cd / 2 - 0.5 * lt
        depth = v0 - v
        spn = np.maximum.reduce([au - dm["spw"] / 2, -depth, depth - dm["sp"],
                                 np.abs(s - (lo + 0.3 * H - 0.3 * depth))
                                 - H * (0.35 + 0.15 * np.clip(depth / dm["sp"], 0, 1))])
        u0, u1 = cw / 2 + 0.5 * pw, dm["tp"]
        vtp = -(D + 0.5 + (0.3 if k == 2 else 0.5) * cd) - 0.12 * np.maximum(au - u0, 0)
        th = dm["tpt"] * (1.0 - 0.35 * np.clip((au - u0) / max(u1 - u0, 1.0), 0, 1))
        tpr = np.maximum.reduce([np.abs(v - vtp) - th / 2, np.abs(s - (lo + 0.6 * H)) - 0.22 * H,
                                 au - u1, u0 - 2.0 - au])
        post = np.minimum.reduce([ped, lam, spn, tpr])
    else:  # sacrum: fused arch, median crest, alae (drawn with S1)
        lam = np.maximum.reduce([-ce, ce - lt - 2.0, v - (vcc - 0.1 * cd), au - (cw / 2 + 10.0),
                                 lo - s, s - (hi - 3.0)])
        crest = np.maximum.reduce([au - 4.0, v - (vcc - cd / 2 - lt), (vcc - cd / 2 - lt - 12.0) - v,
                                   lo - s, s - (hi - 6.0)])
        post = np.minimum(lam, crest)
        if k == 1:
            ala_hw = M.P["pelvis"]["ala_half_width_mm"]
            half = 0.5 * (ala_hw - 0.6 * W)
            wing = _sell_sdf(au - (ala_hw - half), v + 0.25 * D + 0.12 * (au - W), half, 0.8 * D, 3.0)
            ala = np.maximum.reduce([wing, s - (hi - 3.0 - 0.35 * np.maximum(au - W, 0)), sp.lo[0] - s])
            post = np.minimum(post, ala)
    if 1 <= k <= 6:  # facet joints around the disc above
        uf, vf = cw / 2 + 3.0, vcc - 0.3 * cd
        fac = np.maximum.reduce([_sell_sdf(au - uf, v - vf, 6.5, 8.0), (hi - 0.35 * H) - s,
                                 s - (sp.lo[k + 1] + 0.3 * (sp.hi[k + 1] - sp.lo[k + 1]))])
        beta = math.radians(25.0 + 4.0 * (6 - k))
        joint = (fac < 0) & (np.abs((au - uf) * math.cos(beta) - (v - vf) * math.sin(beta)) < 0.7)
        post = np.minimum(post, fac)
    return body, post, joint


def _paint_spine(M: _Model, pl: _Plane, L: dict) -> None:
    sp = M.sp
    xr = max(float(sp.dims["tp"].max()), M.P["pelvis"]["ala_half_width_mm"]) + 8.0
    got = pl.box(-xr, xr, L["ysp"] - 12.0, L["yf"] + 6.0)
    if got is None:
        return
    sl, X, Y = got
    S, V = L["ps"].sv(Y)
    t, vl = pl.tissue[sl], pl.vlab[sl]
    D, cw, cd = sp.dim("D", S), sp.dim("cw", S), sp.dim("cd", S)
    vcc = -(D + 0.5 + cd / 2)
    ce = _sell_sdf(X, V - vcc, cw / 2, cd / 2)
    t[(ce >= 0) & (ce < 3.0) & (V < vcc - 0.15 * cd) & (np.abs(X) < cw / 2 + 4.0)] = FDENSE  # lig. flavum
    degen = M.P["disc_degenerated"]
    for k, lvl in enumerate(("S1-S2", "L5-S1", "L4-L5", "L3-L4", "L2-L3", "L1-L2", "T12-L1")):
        a, b = sp.hi[k], sp.lo[k + 1]
        m = (S > a - 0.5) & (S < b + 0.5)
        if not m.any():
            continue
        Wd = (sp.V[k]["W"] + sp.V[k + 1]["W"]) / 2 + 1.2
        Dd = (sp.V[k]["D"] + sp.V[k + 1]["D"]) / 2 + 1.2
        x, v, s = X[m], V[m], S[m]
        disc = np.maximum(_sell_sdf(x, v, Wd, Dd), np.maximum(a - s, s - b)) < 0
        nuc = disc & (_sell_sdf(x, v + 0.1 * Dd, 0.55 * Wd, 0.5 * Dd) < 0) & (np.abs(s - (a + b) / 2) < 0.35 * (b - a))
        tt = t[m]
        tt[disc] = ANNULUS
        if k > 0 and not degen.get(lvl, False):
            tt[nuc] = NUCLEUS
        t[m] = tt
    bsdf = np.full(S.shape, 1e3, np.float32)
    owner = np.zeros(S.shape, np.int8)
    joints = np.zeros(S.shape, bool)
    for k in range(len(VERTS)):
        H = sp.hi[k] - sp.lo[k]
        m = (S > sp.lo[k] - 0.5 * H - 12.0) & (S < sp.hi[k] + 20.0)
        if not m.any():
            continue
        body, post, joint = _vertebra_sdf(M, k, X[m], V[m], S[m])
        d = np.minimum(body, post)
        cur = bsdf[m]
        better = d < cur
        cur[better] = d[better]
        bsdf[m] = cur
        ow = owner[m]
        ow[better] = k
        owner[m] = ow
        if VERT_LABEL[k]:
            vv = vl[m]
            vv[body < 0] = VERT_LABEL[k]
            vl[m] = vv
        jj = joints[m]
        jj |= joint
        joints[m] = jj
    bone = bsdf < 0
    whole = pl.vwhole[sl]
    whole[bone] = np.asarray(VERT_LABEL, np.uint8)[owner[bone]]
    t[bone] = MARROW0 + owner[bone]
    t[bone & (bsdf > -1.0)] = CORTEX
    t[joints] = JOINT
    # Canal contents: epidural fat, the dural sac (CSF) down to S2, the conus / cauda equina roots.
    inside = ce < 0
    t[inside] = EPIFAT
    vs = vcc + 0.12 * cd
    sac = inside & (_sell_sdf(X, V - vs, 0.36 * cw, 0.36 * cd) < 0) & (S > sp.mid[0])
    t[sac] = CSF
    conus = sac & (S > sp.mid[6]) & (_sell_sdf(X, V - vs, 4.5, 4.0) < 0)
    t[conus] = NERVE
    roots = np.zeros(S.shape, bool)
    for fx in (-0.24, -0.12, 0.0, 0.12, 0.24):
        roots |= (X - fx * cw) ** 2 + (V - (vs - 0.2 * cd)) ** 2 < 0.8
    t[sac & ~conus & roots] = NERVE


# --------------------------------------------------------------------------------------------
# One plane, calibration of muscle sizes, ground truth at the disc planes
# --------------------------------------------------------------------------------------------

def _render_plane(M: _Model, pl: _Plane) -> dict:
    L = M.landmarks(pl.z)
    body = _paint_body(M, pl, L)
    _paint_organs(M, pl, L, body)
    _paint_pelvis(M, pl, body, bone=False)
    shapes = _paint_muscles(M, pl, L, body)
    _paint_pelvis(M, pl, body, bone=True)
    _paint_spine(M, pl, L)
    return shapes


def _measure_plane(M: _Model, z: float, h: float) -> dict[int, tuple[float, float]]:
    """label -> (area mm^2, mean fat fraction) of each target muscle in the plane at z, on a
    regular h-mm grid covering all muscles (patient frame; no partial volume)."""
    L = M.landmarks(z)
    shapes = _muscle_shapes(M, z, L, _outline(M, z, L))
    ext = [1.1 * max(s[2], s[3]) + 6.0 for s in shapes.values()]
    x0 = min(s[0] - e for s, e in zip(shapes.values(), ext))
    x1 = max(s[0] + e for s, e in zip(shapes.values(), ext))
    y0 = min(s[1] - e for s, e in zip(shapes.values(), ext))
    y1 = max(s[1] + e for s, e in zip(shapes.values(), ext))
    pl = _Plane(z, np.arange(x0, x1, h) + h / 2, np.arange(y0, y1, h) + h / 2)
    _render_plane(M, pl)
    out = {}
    for lab in range(1, 9):
        sel = pl.tissue == MUSCLE0 + lab
        n = int(sel.sum())
        out[lab] = (n * h * h, float(pl.mff[sel].mean()) if n else 0.0)
    return out


def _calibrate(M: _Model, rounds: int = 3, h: float = 0.5) -> None:
    """Scale each muscle's size at each disc plane so that its CSA meets the drawn target."""
    for _ in range(rounds):
        for i, lvl in enumerate(LEVELS):
            got = _measure_plane(M, float(M.zk[i]), h)
            for (m, side), lab in MUSCLE_LABELS.items():
                target = M.P["muscles"][f"{m}_{side}"]["csa_target_mm2"][i]
                area = got[lab][0]
                ratio = target / area if area > 1.0 else 2.0
                M.k[lab][i] = float(np.clip(M.k[lab][i] * np.clip(ratio, 0.5, 2.0), 0.2, 5.0))


def _add_contact_loop(M: _Model) -> None:
    """A bowel loop lying directly on one psoas (no fat plane), in some subjects."""
    if not M.P["bowel"]["psoas_contact"]:
        return
    rng = np.random.default_rng(M.P["bowel"]["seed"] + 1)
    z = float(rng.uniform(M.zk[4], M.zk[2]))
    side = SIDES[int(rng.integers(2))]
    L = M.landmarks(z)
    cx, cy, a, b, ang, _, sg, _ = _muscle_shapes(M, z, L, _outline(M, z, L))[MUSCLE_LABELS[("psoas", side)]]
    du, dw = _rot(np.array(0.6), np.array(0.8), 0.0, 0.0, ang, 1.0)
    rb = 1.0 / math.sqrt((float(du) / a) ** 2 + (float(dw) / b) ** 2)
    r = float(rng.uniform(10.0, 14.0))
    M.spheres.append((cx + sg * 0.6 * (rb + r - 1.0), cy + 0.8 * (rb + r - 1.0), z, r, 2.0,
                      [BFLUID, BCHYME, BFECES][int(rng.integers(3))], None, 12.0, (0.0, 0.0, 12.0)))
    M.P["bowel"]["contact"] = {"side": side, "z_mm": round(z, 1)}


def _truth(M: _Model, seed: int, h: float = 0.25) -> Morphometry:
    rows = []
    for i, lvl in enumerate(LEVELS):
        got = _measure_plane(M, float(M.zk[i]), h)
        for (m, side), lab in MUSCLE_LABELS.items():
            area, ff = round(got[lab][0], 2), round(got[lab][1], 4)
            rows.append(MuscleMeasure(muscle=m, side=side, level=lvl, csa_mm2=area,
                                      lean_csa_mm2=round(area * (1.0 - ff), 2), fat_fraction=ff))
    order = {key: n for n, key in enumerate((m, s, lvl) for m in MUSCLES for s in SIDES for lvl in LEVELS)}
    rows.sort(key=lambda r: order[(r.muscle, r.side, r.level)])
    return Morphometry(subject=f"anatomic-{seed}", muscles=tuple(rows))


# --------------------------------------------------------------------------------------------
# The volume: grid, partial-volume sampling, bias field, Rician noise, storage orientation
# --------------------------------------------------------------------------------------------

def _grid(M: _Model):
    """World grid (RAS, axis-aligned): voxel-centre x and y vectors, slice z (patient) centres."""
    P, acq = M.P, M.P["acquisition"]
    dx, dy, dz = P["voxel_mm"]
    B = P["body"]
    xs, ys = [], []
    for z in np.linspace(M.z_min, M.z_max, 7):
        L = M.landmarks(float(z))
        O = _outline(M, float(z), L)
        half = O["A"] + B["subq_lateral_mm"] * (1.0 + B["flank_bulge"]) + 3.0
        xs += [-half, half]
        ys += [O["yb_in"] - O["tb"] - 3.0, O["yf_in"] + B["subq_anterior_mm"] + 3.0]
    rot = math.radians(acq["rotation_deg"])
    tx, ty, tz = acq["table_offset_mm"]
    cx = np.array([min(xs), max(xs), min(xs), max(xs)])
    cy = np.array([min(ys), min(ys), max(ys), max(ys)])
    wx = math.cos(rot) * cx - math.sin(rot) * cy + tx
    wy = math.sin(rot) * cx + math.cos(rot) * cy + ty
    margin, fov = acq["fov_margin_mm"], acq["fov_max_mm"]
    x0, x1 = wx.min() - margin, wx.max() + margin
    if acq["clip_sides"]:  # a FOV that cuts the flanks, as many lumbar protocols do
        keep = max(0.8 * (x1 - x0), 2.0 * (0.62 * B["interior_half_width_mm"] + 40.0))
        x0, x1 = max(x0, tx - keep / 2), min(x1, tx + keep / 2)
    if x1 - x0 > fov:
        x0, x1 = tx - fov / 2, tx + fov / 2
    y0, y1 = wy.min() - margin, wy.max() + margin
    y1 = min(y1, y0 + fov)  # the back (coil side) is always in; a large belly may be cut
    nx, ny = int(math.ceil((x1 - x0) / dx)), int(math.ceil((y1 - y0) / dy))
    xw = x0 + (np.arange(nx) + 0.5) * dx
    yw = y0 + (np.arange(ny) + 0.5) * dy
    z_first = M.z_min + dz * (0.5 - 0.5 * acq["slice_phase"])
    nz = int(math.ceil((M.z_max - z_first) / dz)) + 1
    zp = z_first + np.arange(nz) * dz
    return xw, yw, zp, (tx, ty, tz), acq["rotation_deg"]


def _bias(M: _Model, xw, yw, zw, y_back: float):
    """A smooth multiplicative receive field, 1 +- amplitude, strongest at the posterior coil."""
    rng = np.random.default_rng(M.P["mr"]["bias_seed"])
    amp, decay = M.P["mr"]["bias_amplitude"], M.P["mr"]["coil_decay_mm"]
    X, Y = np.meshgrid(xw, yw, indexing="ij")
    xn = (X - xw.mean()) / max(np.ptp(xw) / 2, 1.0)
    yn = (Y - yw.mean()) / max(np.ptp(yw) / 2, 1.0)
    coil = 2.0 * np.exp(-np.clip(Y - y_back, 0, None) / decay) - 1.0
    c = rng.uniform(-1, 1, 5)
    c /= np.abs(c).sum()
    zs = (np.asarray(zw) - np.mean(zw)) / max(np.ptp(zw) / 2, 1.0)
    out = []
    for zn in zs:
        poly = c[0] * xn + c[1] * yn + c[2] * zn + c[3] * xn * yn + c[4] * (xn * xn - 0.5)
        out.append(1.0 + amp * (0.65 * coil + 0.35 * poly))
    return np.stack(out, -1).astype(np.float32)


def _orient(arrays: list[np.ndarray], affine: np.ndarray, code: str):
    ras = nib.orientations.axcodes2ornt(("R", "A", "S"))
    target = nib.orientations.axcodes2ornt(tuple(code))
    tr = nib.orientations.ornt_transform(ras, target)
    new_aff = affine @ nib.orientations.inv_ornt_aff(tr, arrays[0].shape)
    return [np.ascontiguousarray(nib.orientations.apply_orientation(a, tr)) for a in arrays], new_aff


def _per_voxel(a: np.ndarray, nx: int, ny: int) -> np.ndarray:
    """(2 nx, 2 ny) sub-samples -> (nx, ny, 4): the four in-plane sub-samples of each voxel."""
    return a.reshape(nx, 2, ny, 2).transpose(0, 2, 1, 3).reshape(nx, ny, 4)


def _majority(sub: np.ndarray, n_labels: int) -> np.ndarray:
    """Per voxel, the label held by more than half of its sub-samples (else 0)."""
    out = np.zeros(sub.shape[:2], np.uint8)
    cand = np.nonzero(sub.max(-1) > 0)
    if cand[0].size:
        s = sub[cand]
        need = sub.shape[-1] // 2 + 1
        best = np.zeros(len(s), np.uint8)
        for v in range(1, n_labels + 1):
            best[(s == v).sum(-1) >= need] = v
        out[cand] = best
    return out


def make_anatomic_phantom(seed: int, habitus: str | None = None,
                          voxel_mm: tuple[float, float, float] | None = None,
                          noise: float | None = None) -> AnatomicPhantom:
    """One subject of the anatomic phantom family (see the module docstring).

    habitus: "slim", "average", "obese" or None (drawn from the seed); voxel_mm: (in-plane x,
    in-plane y, slice) in mm, drawn between 1 x 1 x 3 and 2 x 2 x 6 when None; noise: Rician
    sigma as a fraction of the lean-muscle water signal, drawn 0.02-0.06 when None (0: noiseless).
    """
    P = _draw_params(int(seed), habitus, voxel_mm, noise)
    M = _Model(P)
    _calibrate(M)
    _add_contact_loop(M)
    truth = _truth(M, seed)
    xw, yw, zp, (tx, ty, tz), rot = _grid(M)
    dx, dy, dz = P["voxel_mm"]
    nx, ny, nz = len(xw), len(yw), len(zp)
    xs = np.repeat(xw, 2) + np.tile([-dx / 4, dx / 4], nx)
    ys = np.repeat(yw, 2) + np.tile([-dy / 4, dy / 4], ny)
    water = np.zeros((nx, ny, nz), np.float32)
    fat = np.zeros((nx, ny, nz), np.float32)
    labels = np.zeros((nx, ny, nz), np.uint8)
    verts = np.zeros((nx, ny, nz), np.uint8)
    whole = np.zeros((nx, ny, nz), np.uint8)
    n_sub = 12
    for k, z in enumerate(zp):
        wsum = np.zeros((nx, ny), np.float32)
        fsum = np.zeros((nx, ny), np.float32)
        mlab = np.zeros((nx, ny, n_sub), np.uint8)
        vlab = np.zeros((nx, ny, n_sub), np.uint8)
        wlab = np.zeros((nx, ny, n_sub), np.uint8)
        for j in (-1, 0, 1):
            pl = _Plane(z + j * dz / 3, xs, ys, rot, tx, ty)
            _render_plane(M, pl)
            t = pl.tissue
            mus = t >= MUSCLE0
            ff = np.where(mus, pl.mff, M.tissue_ff[t])
            s0 = M.tissue_s0[t]
            wsum += (s0 * (1 - ff)).reshape(nx, 2, ny, 2).sum((1, 3))
            fsum += (s0 * ff).reshape(nx, 2, ny, 2).sum((1, 3))
            sub = slice(4 * (j + 1), 4 * (j + 2))
            mlab[:, :, sub] = _per_voxel(np.where(mus, t - MUSCLE0, 0), nx, ny)
            vlab[:, :, sub] = _per_voxel(pl.vlab, nx, ny)
            wlab[:, :, sub] = _per_voxel(pl.vwhole, nx, ny)
        water[:, :, k] = wsum / n_sub
        fat[:, :, k] = fsum / n_sub
        labels[:, :, k] = _majority(mlab, 8)
        verts[:, :, k] = _majority(vlab, 6)
        whole[:, :, k] = _majority(wlab, 6)
    S0 = P["mr"]["S0"]
    y_back = float(np.min(yw))
    bias = _bias(M, xw, yw, zp, y_back)
    water *= bias * S0
    fat *= bias * S0
    sigma = P["noise"] * S0
    if sigma > 0:
        rng = np.random.default_rng(P["mr"]["noise_seed"])
        for arr in (water, fat):
            for k in range(nz):
                n1 = rng.normal(0.0, sigma, (nx, ny)).astype(np.float32)
                n2 = rng.normal(0.0, sigma, (nx, ny)).astype(np.float32)
                arr[:, :, k] = np.sqrt((arr[:, :, k] + n1) ** 2 + n2 ** 2)
    affine = np.eye(4)
    affine[:3, :3] = np.diag([dx, dy, dz])
    affine[:3, 3] = [xw[0], yw[0], zp[0] + tz]
    code = P["acquisition"]["orientation"]
    (water, fat, labels, verts, whole), affine = _orient([water, fat, labels, verts, whole], affine, code)
    P["grid"] = {"shape": list(water.shape), "disc_z_world_mm": {lvl: round(float(z + tz), 2)
                                                                 for lvl, z in zip(LEVELS, M.zk)},
                 "calibration": {f"{m}_{s}": [round(v, 3) for v in M.k[lab]] for (m, s), lab in MUSCLE_LABELS.items()}}
    P = json.loads(json.dumps(P))
    truth = Morphometry(subject=truth.subject, muscles=truth.muscles,
                        provenance={"generator": "lumbar-twin anatomic phantom", "seed": int(seed)})
    return AnatomicPhantom(water=water.astype(np.float32), fat=fat.astype(np.float32), affine=affine,
                           labels=labels.astype(np.uint8), vertebrae=verts.astype(np.uint8), truth=truth,
                           params=P, seed=int(seed), vertebrae_whole=whole)


def write_anatomic_phantom(phantom: AnatomicPhantom, out_dir: str | Path) -> dict[str, Path]:
    """water.nii.gz, fat.nii.gz, vertebrae.nii.gz (bodies), vertebrae_whole.nii.gz (whole
    vertebrae, when made), labels_truth.nii.gz (sform = qform = affine, code 1) and truth.json
    (the morphometry plus provenance) in out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    arrays = [("water", phantom.water), ("fat", phantom.fat), ("vertebrae", phantom.vertebrae),
              ("vertebrae_whole", phantom.vertebrae_whole), ("labels_truth", phantom.labels)]
    for name, arr in ((n, a) for n, a in arrays if a is not None):
        img = nib.Nifti1Image(arr, phantom.affine)
        img.set_qform(phantom.affine, code=1)
        img.set_sform(phantom.affine, code=1)
        paths[name] = out / f"{name}.nii.gz"
        nib.save(img, str(paths[name]))
    doc = phantom.truth.to_dict()
    doc["provenance"] = {"generator": "lumbar-twin anatomic phantom", "seed": phantom.seed, "params": phantom.params}
    paths["truth"] = out / "truth.json"
    paths["truth"].write_text(json.dumps(doc, indent=1))
    return paths

"""Synthetic lumbar MRI whose truth is known: Dixon water and fat, a single-contrast
T1-weighted image of the same subject, vertebra labels, muscle labels and the morphometry at
every disc level.

The anatomy is drawn in patient millimetres (x right, y anterior, z superior; z = 0 at the S1
endplate) from a seed: vertebral bodies, discs, canal, posterior elements and iliac wings;
subcutaneous, intermuscular and retroperitoneal fat; viscera; and the eight muscles, whose
cross-sectional areas follow the healthy norms at each disc (data/lumbar_template.yaml,
reference_morphometry) scaled per subject, muscle and side. Muscles that touch are parted by
a thin fascial plane; fat infiltrates them diffusely and in patches. The volume is sampled
with partial volume (sub-voxel averaging) on an anisotropic grid in one of several
orientations, with a small obliquity and offset, a smooth bias field and Rician noise. The
T1-weighted image is the same water and fat proton densities under spin-echo T1 weighting
(fat bright, muscle grey), with the same bias field and its own Rician noise.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from imaging.labels import DEFAULT_VERTEBRA_LABELS, MUSCLE_LABELS, VERTEBRAE
from imaging.morphometry import LEVELS, MUSCLES, SIDES, SCHEMA, Morphometry, MuscleMeasure, healthy_csa_mm2

#: Body heights of L1..L5 and disc heights L1-L2..L5-S1 (mm), Panjabi et al. 1992.
BODY_HEIGHTS_MM = (25.0, 26.0, 27.0, 27.0, 27.0)
DISC_HEIGHTS_MM = (9.0, 10.0, 11.0, 12.0, 11.0)
#: Diffuse fat fraction ranges per muscle (Crawford 2016, Si 2023: psoas 4-7 %, paraspinals
#: 12-21 % with a wide spread rising with age).
DIFFUSE_FAT = {"psoas": (0.02, 0.08), "quadratus_lumborum": (0.04, 0.14),
               "erector_spinae": (0.06, 0.25), "multifidus": (0.08, 0.35)}
#: Array axis codes a stack may be stored in (all axial: slices along S-I).
ORIENTATIONS = (("R", "A", "S"), ("L", "P", "S"), ("L", "A", "S"), ("R", "P", "I"), ("P", "L", "S"), ("A", "R", "I"))
FASCIA_MM = 1.2
#: Spin-echo T1 weighting, 1.5 T, TR 500 ms, TE 10 ms: relaxation of skeletal muscle (T1 about
#: 1008 ms, T2 44 ms) and subcutaneous fat (T1 343 ms, T2 58 ms) after Gold et al. 2004 (AJR
#: 183:343). Signal per unit proton density, relative to fat's: water (muscle) about 0.48.
TR_MS, TE_MS = 500.0, 10.0
T1_WEIGHT_WATER = (1 - math.exp(-TR_MS / 1008.0)) * math.exp(-TE_MS / 44.0)
T1_WEIGHT_FAT = (1 - math.exp(-TR_MS / 343.0)) * math.exp(-TE_MS / 58.0)
SUBSAMPLES = (2, 2, 2)


@dataclass
class Anatomy:
    """One subject's geometry and tissue parameters (mm)."""

    seed: int
    spine_scale: float
    body_rx: float
    body_ry: float
    subcutaneous_mm: float
    lordosis_mm: float
    csa: dict[tuple[str, str], np.ndarray]  # (muscle, side) -> CSA at the five discs, mm^2
    aspect: dict[tuple[str, str], float]
    jitter: dict[tuple[str, str], tuple[float, float]]
    wobble: dict[tuple[str, str], tuple[float, float, float, float]]
    diffuse_fat: dict[tuple[str, str], float]
    patches: list[tuple[str, str, np.ndarray, float, float]]  # muscle, side, centre, radius, ff
    marrow_fat: float
    #: Body outline centre relative to the spine (mm, anterior), set so that the paraspinal
    #: muscles lie inside the body under their subcutaneous fat.
    body_centre_mm: float = 45.0
    disc_z: np.ndarray = field(default=None)  # disc centre planes L1-L2..L5-S1
    body_z: dict[str, tuple[float, float]] = field(default=None)  # vertebra -> (bottom, top)

    def __post_init__(self):
        z, disc_z, body_z = 0.0, [], {"S1": (-40.0 * self.spine_scale, 0.0)}
        for name, h_body, h_disc in zip(("L5", "L4", "L3", "L2", "L1"), BODY_HEIGHTS_MM[::-1], DISC_HEIGHTS_MM[::-1]):
            disc_z.append(z + 0.5 * h_disc * self.spine_scale)
            z += h_disc * self.spine_scale
            body_z[name] = (z, z + h_body * self.spine_scale)
            z += h_body * self.spine_scale
        self.disc_z = np.array(disc_z[::-1])  # L1-L2 first
        self.body_z = body_z


def random_anatomy(seed: int, variant: str | None = None) -> Anatomy:
    """A subject drawn from `seed`. `variant`: None, 'atrophy' (one-sided multifidus and
    erector loss, fatty), 'slim' or 'large' (body habitus and muscle bulk off the defaults)."""
    rng = np.random.default_rng(seed)
    size = {"slim": 0.8, "large": 1.25}.get(variant, 1.0)
    norms = healthy_csa_mm2()
    csa, aspect, jitter, wobble, fat = {}, {}, {}, {}, {}
    for muscle in MUSCLES:
        bulk = rng.uniform(0.8, 1.2) * size
        for side in SIDES:
            key = (muscle, side)
            csa[key] = np.array([norms[muscle][level] for level in LEVELS]) * bulk * rng.uniform(0.9, 1.1)
            aspect[key] = {"psoas": 1.1, "quadratus_lumborum": 0.55, "erector_spinae": 0.75,
                           "multifidus": 1.3}[muscle] * rng.uniform(0.88, 1.12)
            jitter[key] = tuple(rng.uniform(-2.5, 2.5, 2))
            wobble[key] = (rng.uniform(0, 0.06), rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.04),
                           rng.uniform(0, 2 * np.pi))
            fat[key] = rng.uniform(*DIFFUSE_FAT[muscle])
    if variant == "atrophy":
        side = SIDES[int(rng.integers(2))]
        for muscle, loss in (("multifidus", 0.55), ("erector_spinae", 0.8)):
            csa[(muscle, side)][2:] *= loss
            fat[(muscle, side)] = min(0.5, fat[(muscle, side)] + 0.15)
    patches = []
    for muscle in ("erector_spinae", "multifidus"):
        for side in SIDES:
            for _ in range(int(rng.integers(0, 5))):
                patches.append((muscle, side, rng.uniform([-1, -1, -30], [1, 1, 180]), rng.uniform(3, 7),
                                rng.uniform(0.5, 0.9)))
    spine_scale = rng.uniform(0.92, 1.08) * (size ** 0.3)
    body_ry = rng.uniform(105, 125) * size
    subcutaneous = rng.uniform(8, 28) * size
    # Deepest paraspinal point behind the spine: canal, lamina, then the thickest of the
    # erector spinae or multifidus outlines (see _muscle_shapes), plus a margin.
    depth = max(np.sqrt(csa[k].max() * aspect[k] / np.pi) * (1.85 if k[0] == "erector_spinae" else 2.0)
                for k in csa if k[0] in ("erector_spinae", "multifidus"))
    posterior = 35 * spine_scale + depth + 8
    return Anatomy(
        seed=seed, spine_scale=spine_scale, body_rx=rng.uniform(140, 165) * size,
        body_ry=body_ry, subcutaneous_mm=subcutaneous,
        lordosis_mm=rng.uniform(4, 18), csa=csa, aspect=aspect, jitter=jitter, wobble=wobble,
        diffuse_fat=fat, patches=patches, marrow_fat=rng.uniform(0.35, 0.6),
        body_centre_mm=body_ry - posterior - subcutaneous,
    )


# -- anatomy as a function of position ------------------------------------------------------

def _spine_y(anatomy: Anatomy, z: np.ndarray) -> np.ndarray:
    top = anatomy.body_z["L1"][1]
    return anatomy.lordosis_mm * np.sin(np.pi * np.clip(z / top, 0, 1))


def _area(anatomy: Anatomy, key, z: np.ndarray) -> np.ndarray:
    muscle = key[0]
    d = anatomy.disc_z[::-1]  # ascending z: L5-S1 first
    values = anatomy.csa[key][::-1]
    top, bottom = anatomy.body_z["L1"][1] + 30, d[0] - 45
    ends = {"psoas": (0.9, 0.25), "quadratus_lumborum": (0.0, 0.6), "erector_spinae": (0.35, 0.95),
            "multifidus": (0.45, 0.9)}[muscle]
    zs = np.r_[bottom, d, top]
    vs = np.r_[values[0] * ends[0], values, values[-1] * ends[1]]
    if muscle == "quadratus_lumborum":  # ends at the iliac crest
        zs[0] = d[0] - 30
    out = np.interp(z, zs, vs)
    return np.where((z < zs[0]) | (z > top), 0.0, out)


def _muscle_shapes(anatomy: Anatomy, x, y, z):
    """Normalised radius rho (< 1 inside) of each muscle's outline at the points."""
    s = anatomy.spine_scale
    yc = _spine_y(anatomy, z)
    a_vb, b_vb = 22 * s, 16 * s
    y_canal = yc - b_vb - 10 * s
    areas = {key: _area(anatomy, key, z) for key in anatomy.csa}
    sizes = {}
    for key, area in areas.items():
        a = np.sqrt(np.maximum(area, 1e-6) / (np.pi * anatomy.aspect[key]))
        sizes[key] = (a, anatomy.aspect[key] * a)
    out = {}
    for key, (a, b) in sizes.items():
        muscle, side = key
        sign = 1.0 if side == "right" else -1.0
        if muscle == "psoas":
            cx, cy = a_vb + 0.8 * a, yc + 0.25 * b_vb
        elif muscle == "quadratus_lumborum":
            cx, cy = 46 * s + 0.55 * a, yc - 0.7 * b_vb
        elif muscle == "multifidus":
            cx, cy = 4.5 + a, y_canal - 9 - b
        else:  # erector spinae, lateral to multifidus
            a_mf = sizes[("multifidus", side)][0]
            cx, cy = 4.5 + 2 * a_mf + 0.8 * a, y_canal - 9 - 0.85 * b
        jx, jy = anatomy.jitter[key]
        u, v = (sign * x - cx - jx) / a, (y - cy - jy) / b
        r2 = u * u + v * v
        r = np.sqrt(r2) + 1e-12
        c1, s1 = u / r, v / r  # cos and sin of the polar angle, without trigonometry
        c2, s2 = c1 * c1 - s1 * s1, 2 * s1 * c1
        c3, s3 = c1 * (4 * c1 * c1 - 3), s1 * (3 - 4 * s1 * s1)
        e1, p1, e2, p2 = anatomy.wobble[key]
        outline = 1 + e1 * (c2 * np.cos(p1) - s2 * np.sin(p1)) + e2 * (c3 * np.cos(p2) - s3 * np.sin(p2))
        rho = r / outline
        rho[areas[key] <= 1.0] = np.inf
        out[key] = (rho, np.minimum(a, b))
    return out


def evaluate(anatomy: Anatomy, points: np.ndarray):
    """Tissue at patient-mm points (n, 3): (muscle label, water PD, fat PD, vertebra label)."""
    x, y, z = points.T
    s = anatomy.spine_scale
    yc = _spine_y(anatomy, z)
    n = len(x)
    label = np.zeros(n, np.uint8)
    vert = np.zeros(n, np.uint8)
    pd = np.zeros(n)
    ff = np.zeros(n)

    body_cy = yc + anatomy.body_centre_mm
    inside = np.hypot(x / anatomy.body_rx, (y - body_cy) / anatomy.body_ry) < 1
    pd[inside], ff[inside] = 1.0, 0.95  # fat everywhere inside; other tissues replace it
    wall = anatomy.subcutaneous_mm + 12  # subcutaneous fat and the abdominal wall
    viscera = inside & (y > yc + 12 * anatomy.spine_scale) & \
        (np.hypot(x / (anatomy.body_rx - wall), (y - body_cy) / (anatomy.body_ry - wall)) < 1)
    pd[viscera], ff[viscera] = 0.7, 0.15
    # Spine and muscles only near the spine: the expensive part, on a subset of the points.
    near = np.nonzero(inside & (np.abs(x) < 140 * s) & (y > yc - 120 * s) & (y < yc + 70 * s))[0]
    if len(near):
        sub = _spine_and_muscles(anatomy, x[near], y[near], z[near], yc[near], viscera[near])
        label[near], vert[near], pd[near], ff[near] = sub[0], sub[1], np.where(sub[2] >= 0, sub[2], pd[near]), \
            np.where(sub[3] >= 0, sub[3], ff[near])
    pd[~inside] = 0.0
    return label, pd * (1 - ff), pd * ff, vert


def _spine_and_muscles(anatomy: Anatomy, x, y, z, yc, viscera):
    """Labels and tissue near the spine; pd/ff of -1 leave the surrounding tissue as it is."""
    s = anatomy.spine_scale
    n = len(x)
    label = np.zeros(n, np.uint8)
    vert = np.zeros(n, np.uint8)
    pd = np.full(n, -1.0)
    ff = np.full(n, -1.0)

    # Muscles: nearest outline wins where two overlap; a fascial plane parts them.
    shapes = _muscle_shapes(anatomy, x, y, z)
    keys = list(shapes)
    rho = np.stack([shapes[k][0] for k in keys])
    radius = np.stack([np.broadcast_to(shapes[k][1], (n,)) for k in keys])
    order = np.argsort(rho, axis=0)
    best, second = np.take_along_axis(rho, order[:1], 0)[0], np.take_along_axis(rho, order[1:2], 0)[0]
    winner = order[0]
    min_radius = np.take_along_axis(radius, order[:1], 0)[0]
    in_muscle = best < 1
    with np.errstate(invalid="ignore"):
        fascia = in_muscle & (second < 1 + 2 * FASCIA_MM / min_radius) & ((second - best) * min_radius < FASCIA_MM)
    muscle = in_muscle & ~fascia
    retro = viscera & (best < 1 + 10.0 / min_radius)  # retroperitoneal fat around the muscles
    pd[retro | fascia], ff[retro | fascia] = 1.0, 0.95
    values = np.array([MUSCLE_LABELS[k] for k in keys], np.uint8)
    label[muscle] = values[winner[muscle]]
    pd[muscle] = 0.9
    diffuse = np.array([anatomy.diffuse_fat[k] for k in keys])
    ff[muscle] = diffuse[winner[muscle]]
    for m, side, centre, radius_mm, patch_ff in anatomy.patches:
        key_index = keys.index((m, side))
        sign = 1.0 if side == "right" else -1.0
        # patch centres sit in the muscle's own neighbourhood, a few mm apart
        cx = sign * (50 if m == "erector_spinae" else 15) * s + sign * centre[0] * 10
        cy = yc - 50 * s + centre[1] * 10
        hit = muscle & (winner == key_index) & (np.hypot(np.hypot(x - cx, y - cy), (z - centre[2]) / 2) < radius_mm)
        ff[hit] = np.maximum(ff[hit], patch_ff)

    # Spine: vertebral bodies and discs, canal, posterior elements, iliac wings, sacrum.
    vb = np.hypot(x / (22 * s), (y - yc) / (16 * s)) < 1
    for name in VERTEBRAE:
        lo, hi = anatomy.body_z[name]
        in_body = vb & (z >= lo) & (z < hi)
        vert[in_body] = DEFAULT_VERTEBRA_LABELS[name]
    marrow = vb & (vert > 0)
    top = anatomy.body_z["L1"][1]
    disc = vb & ~marrow & (z > anatomy.body_z["S1"][1]) & (z < top + 9 * s)  # up to T12-L1
    other = vb & ~marrow & ~disc  # T12 above, lower sacral bodies below: marrow, unlabelled
    pd[marrow | other], ff[marrow | other] = 0.8, anatomy.marrow_fat
    pd[disc], ff[disc] = 0.9, 0.02
    y_canal = yc - 26 * s
    r_canal = np.hypot(x, y - y_canal)
    lamina = (r_canal >= 8 * s) & (r_canal < 12 * s) & (y < y_canal)
    spinous = (np.abs(x) < 3.5) & (y < y_canal - 8 * s) & (y > y_canal - 60 * s)
    starts = np.array([anatomy.body_z[v][0] for v in VERTEBRAE[:5]])
    ends = np.array([anatomy.body_z[v][1] for v in VERTEBRAE[:5]])
    k = np.clip(np.searchsorted(-ends, -z), 0, 4)  # the lumbar vertebra whose range may hold z
    quarter = 0.25 * (ends[k] - starts[k])
    transverse = ((z > starts[k] + quarter) & (z < ends[k] - quarter) & (np.abs(x) > 12 * s) & (np.abs(x) < 44 * s)
                  & (y < yc - 12 * s) & (y > yc - 20 * s))
    ilium = (z < anatomy.disc_z[-1] + 25) & (np.abs(x) > 62 * s) & (np.abs(x) < 120 * s) & \
        (np.abs(y - yc + 5) < 12 + 0.25 * (np.abs(x) - 62 * s))
    sacrum = (z < 0) & (np.hypot(x / (45 * s), (y - yc + 10) / (30 * s)) < 1) & ~vb
    bone = lamina | spinous | transverse | ilium | sacrum
    canal = r_canal < 8 * s
    label[bone | vb | canal] = 0
    pd[bone], ff[bone] = 0.15, 0.3
    pd[canal], ff[canal] = 1.0, 0.0
    return label, vert, pd, ff


# -- sampling ---------------------------------------------------------------------------------

@dataclass
class Phantom:
    water: np.ndarray
    fat: np.ndarray
    vertebrae: np.ndarray
    labels: np.ndarray
    affine: np.ndarray  # voxel -> scanner mm, in the stored orientation
    truth: Morphometry
    anatomy: Anatomy
    noise: float
    orientation: tuple[str, str, str]
    t1: np.ndarray | None = None  # single-contrast T1-weighted image, same grid and truth
    #: patient mm (Anatomy's frame) -> scanner mm: where the truth's disc planes lie in the image
    patient_to_scanner: np.ndarray | None = None


def make_phantom(seed: int = 0, noise: float = 0.04, orientation: tuple[str, str, str] | None = None,
                 spacing_mm: tuple[float, float, float] = (2.0, 2.0, 5.0), variant: str | None = None,
                 shape: tuple[int, int, int] | None = None) -> Phantom:
    """Simulate one subject. `noise` is the Rician sigma relative to full fat/water signal."""
    rng = np.random.default_rng(seed + 10_000)
    anatomy = random_anatomy(seed, variant)
    orientation = orientation or ORIENTATIONS[seed % len(ORIENTATIONS)]
    z_lo, z_hi = anatomy.body_z["S1"][0] + 5, anatomy.body_z["L1"][1] + 20
    extent = np.array([2 * anatomy.body_rx + 40, 2 * anatomy.body_ry + 50, z_hi - z_lo])
    if shape is None:
        shape = tuple(int(math.ceil(e / s)) for e, s in zip(extent, spacing_mm))
    else:
        spacing_mm = tuple(e / n for e, n in zip(extent, shape))
    # Patient frame affine (x right, y anterior, z superior) for the RAS-ordered grid, centred on
    # the body, then a small obliquity and offset as a scanner would record them.
    tilt = np.radians(rng.uniform(-6, 6, 3)) * np.array([1, 1, 2])
    rotation = _rotation(*tilt)
    centre = np.array([0.0, anatomy.body_centre_mm, 0.5 * (z_lo + z_hi)])
    offset = rng.uniform(-40, 40, 3)
    ras = np.eye(4)
    ras[:3, :3] = rotation @ np.diag(spacing_mm)
    ras[:3, 3] = rotation @ (-(np.array(shape) - 1) / 2 * np.array(spacing_mm)) + centre + offset
    # Patient frame equals scanner frame up to that offset and rotation: evaluate anatomy at
    # patient coordinates p = rotation^T (scanner - offset - centre) + centre.
    water, fat, labels, vertebrae = _sample(anatomy, ras, shape, centre, offset, rotation)

    bias = _bias_field(shape, rng)
    sigma = noise * 1.0
    t1 = (water * T1_WEIGHT_WATER + fat * T1_WEIGHT_FAT) / T1_WEIGHT_FAT  # pure fat, PD 1 -> 1
    water = _rician(water * bias, sigma, rng)
    fat = _rician(fat * bias, sigma, rng)
    t1 = _rician(t1 * bias, sigma, rng)  # drawn after the Dixon noise: Dixon phantoms unchanged
    truth = _truth(anatomy, seed)
    # Store in the requested orientation.
    data_ras = {"water": water, "fat": fat, "t1": t1, "labels": labels, "vertebrae": vertebrae}
    stored, affine = _reorient(data_ras, ras, orientation)
    to_scanner = np.eye(4)
    to_scanner[:3, :3] = rotation
    to_scanner[:3, 3] = centre + offset - rotation @ centre
    return Phantom(stored["water"], stored["fat"], stored["vertebrae"], stored["labels"], affine, truth, anatomy,
                   noise, orientation, stored["t1"], to_scanner)


def write_phantom(phantom: Phantom, out_dir: str | Path) -> dict[str, Path]:
    """water.nii.gz, fat.nii.gz, t1.nii.gz (when made), vertebrae.nii.gz, labels_truth.nii.gz,
    truth.json."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    arrays = [("water", phantom.water, np.float32), ("fat", phantom.fat, np.float32),
              ("t1", phantom.t1, np.float32), ("vertebrae", phantom.vertebrae, np.uint8),
              ("labels_truth", phantom.labels, np.uint8)]
    for name, array, dtype in arrays:
        if array is None:
            continue
        img = nib.Nifti1Image(array.astype(dtype), phantom.affine)
        img.set_qform(phantom.affine, code=1)
        img.set_sform(phantom.affine, code=1)
        files[name] = out / f"{name}.nii.gz"
        nib.save(img, str(files[name]))
    doc = phantom.truth.to_dict()
    doc["provenance"] = {"generator": "lumbar-twin phantom", "seed": phantom.anatomy.seed, "noise": phantom.noise,
                         "orientation": "".join(phantom.orientation)}
    files["truth"] = out / "truth.json"
    files["truth"].write_text(json.dumps(doc, indent=1))
    return files


def _rotation(a: float, b: float, c: float) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler("xyz", [a, b, c]).as_matrix()


def _sample(anatomy, ras, shape, centre, offset, rotation):
    nx, ny, nz = shape
    sub = SUBSAMPLES
    offsets = np.stack(np.meshgrid(*[(np.arange(k) + 0.5) / k - 0.5 for k in sub], indexing="ij"), -1).reshape(-1, 3)
    ii, jj = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    water = np.zeros(shape, np.float32)
    fat = np.zeros(shape, np.float32)
    labels = np.zeros(shape, np.uint8)
    vertebrae = np.zeros(shape, np.uint8)
    n_sub = len(offsets)
    for k in range(nz):
        vox = np.stack([ii.ravel(), jj.ravel(), np.full(ii.size, k)], -1).astype(float)
        pts = (vox[:, None, :] + offsets[None]).reshape(-1, 3)
        scanner = pts @ ras[:3, :3].T + ras[:3, 3]
        patient = (scanner - offset - centre) @ rotation + centre
        label, w, f, vert = evaluate(anatomy, patient)
        water[:, :, k] = w.reshape(-1, n_sub).mean(1).reshape(nx, ny)
        fat[:, :, k] = f.reshape(-1, n_sub).mean(1).reshape(nx, ny)
        # A voxel mostly of muscle goes to the muscle with the largest share (a voxel across a
        # fascial plane between two muscles is muscle, not background).
        # Half-covered voxels go in on alternate voxels, so the label area stays unbiased.
        tie = ((ii + jj + k) % 2 == 0).ravel()
        counts = np.stack([(label.reshape(-1, n_sub) == v).sum(1) for v in range(9)], 1)
        share = counts[:, 1:].sum(1) * 2
        keep = (share > n_sub) | ((share == n_sub) & tie)
        labels[:, :, k] = np.where(keep, counts[:, 1:].argmax(1) + 1, 0).reshape(nx, ny)
        vcounts = np.stack([(vert.reshape(-1, n_sub) == v).sum(1) for v in range(7)], 1)
        vshare = vcounts[:, 1:].max(1) * 2
        vkeep = (vshare > n_sub) | ((vshare == n_sub) & tie)
        vertebrae[:, :, k] = np.where(vkeep, vcounts[:, 1:].argmax(1) + 1, 0).reshape(nx, ny)
    return water, fat, labels, vertebrae


def _truth(anatomy: Anatomy, seed: int, step_mm: float = 0.4) -> Morphometry:
    """CSA, lean CSA and fat fraction of every muscle exactly at each disc plane."""
    half = 140 * anatomy.spine_scale  # the muscles' neighbourhood (see evaluate)
    xs = np.arange(-half, half, step_mm) + step_mm / 2
    ys = np.arange(-120 * anatomy.spine_scale, 70 * anatomy.spine_scale, step_mm) + step_mm / 2
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    rows = []
    for level, z in zip(LEVELS, anatomy.disc_z):
        yc = float(_spine_y(anatomy, np.array([z]))[0])
        pts = np.stack([gx.ravel(), gy.ravel() + yc, np.full(gx.size, z)], -1)
        label, water, fat, _ = evaluate(anatomy, pts)
        with np.errstate(invalid="ignore", divide="ignore"):
            ffield = np.where(water + fat > 0, fat / (water + fat), 0.0)
        for (muscle, side), value in MUSCLE_LABELS.items():
            inside = label == value
            area = float(inside.sum() * step_mm**2)
            fat_fraction = float(ffield[inside].mean()) if area > 0 else 0.0
            rows.append(MuscleMeasure(muscle, side, level, round(area, 2), round(area * (1 - fat_fraction), 2),
                                      round(fat_fraction, 4)))
    return Morphometry(subject=f"phantom-{seed}", muscles=tuple(rows), provenance={"schema": SCHEMA})


def _bias_field(shape, rng) -> np.ndarray:
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    coeffs = rng.uniform(-0.12, 0.12, 6)
    x, y, z = grids
    field = 1 + coeffs[0] * x + coeffs[1] * y + coeffs[2] * z + coeffs[3] * x * y + coeffs[4] * (x**2 - 0.3) \
        + coeffs[5] * (y**2 - 0.3)
    return np.clip(field, 0.6, 1.4).astype(np.float32)


def _rician(signal: np.ndarray, sigma: float, rng) -> np.ndarray:
    real = signal + rng.normal(0, sigma, signal.shape)
    imag = rng.normal(0, sigma, signal.shape)
    return np.hypot(real, imag).astype(np.float32)


def _reorient(arrays: dict[str, np.ndarray], ras_affine: np.ndarray, codes):
    """Arrays on a RAS-ordered grid -> the same data stored with axis codes `codes`."""
    target = nib.orientations.axcodes2ornt(codes)
    source = nib.orientations.axcodes2ornt(("R", "A", "S"))
    transform = nib.orientations.ornt_transform(source, target)
    shape = next(iter(arrays.values())).shape
    out = {k: np.ascontiguousarray(nib.orientations.apply_orientation(v, transform)) for k, v in arrays.items()}
    affine = ras_affine @ nib.orientations.inv_ornt_aff(transform, shape)
    return out, affine

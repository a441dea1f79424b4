"""A single-contrast (T1-weighted) image read on a lean-to-fat scale, and the water-like and
fat-like channels that let the Dixon segmenter run on it unchanged.

On a T1-weighted image fat is bright and muscle grey. Once the coil's bias field is removed
(imaging.bias), a voxel's signal is, to first order, linear in its fat content between two
references found in the image itself:

- fat: the median of the body's bright class (above Otsu's threshold): subcutaneous,
  retroperitoneal and intermuscular adipose tissue, taken as FAT_REFERENCE_FRACTION fat
  (adipose tissue reads about 0.9-0.95 on Dixon, not 1: it holds water too);
- lean: before segmentation, the median of the body's soft tissue (the dark class above half
  Otsu's threshold: muscle, viscera, discs), taken as fat-free; after segmentation, the median
  of both psoas muscles (`calibrate_on_psoas`), taken as LEAN_REFERENCE_FRACTION fat: the
  healthy psoas holds about 4-7 % (NOTES.md, Dixon). The psoas's own fat fraction is therefore
  assumed, not measured, on this path (the literature finds no single-contrast method that
  measures it either: Wesselink et al. 2024).

The scale is what T1 weighting makes of proton densities: adipose tissue and fat-replaced muscle
differ in proton density, so the slope is approximate (on the phantoms a 0.30 fat muscle reads
about 0.27); see docs/imaging.md for the errors measured against Dixon truth.

>>> scale = IntensityScale(lean_signal=0.45, fat_signal=0.95, lean_fraction=0.0, fat_reference_fraction=1.0)
>>> round(float(scale.fat_fraction(0.70)), 3)
0.5
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

from imaging.bias import correct_bias
from imaging.labels import ROW_LABELS
from imaging.segment import body_mask
from lumbar_twin.errors import InputError

FAT_REFERENCE_FRACTION = 0.95
LEAN_REFERENCE_FRACTION = 0.05
#: Dark (bone, air): under this share of the lean signal; bright (fat): beyond this position on the scale.
DARK_SHARE = 0.5
DIM_SHARE = 0.8
BRIGHT_POSITION = 0.75
#: Fewest psoas voxels (both sides, all slices) to calibrate on; below, the image's soft tissue stays the reference.
MIN_PSOAS_VOXELS = 200


@dataclass(frozen=True)
class IntensityScale:
    """Bias-corrected signal of the lean and fat references and the fat fraction each stands for."""

    lean_signal: float
    fat_signal: float
    lean_fraction: float = 0.0
    fat_reference_fraction: float = FAT_REFERENCE_FRACTION

    def fat_fraction(self, signal):
        """Fat content that `signal` stands for on the linear lean-to-fat scale (not clipped)."""
        position = (np.asarray(signal, dtype=float) - self.lean_signal) / (self.fat_signal - self.lean_signal)
        return self.lean_fraction + (self.fat_reference_fraction - self.lean_fraction) * position


@dataclass(frozen=True)
class SingleContrast:
    corrected: np.ndarray  # bias-corrected image
    scale: IntensityScale
    water_like: np.ndarray
    fat_like: np.ndarray
    #: "t1", or "t2" / "pd" (fast spin echo: fat bright too, but fluid brighter; imaging.pipeline
    #: takes only CSA and an approximate fat fraction from them).
    weighting: str = "t1"


def prepare(image: np.ndarray, source: str = "image", weighting: str = "t1") -> SingleContrast:
    """Bias-correct a T1-weighted (or, with `weighting`, a T2-weighted or proton-density fast
    spin-echo) image, find its references and make the pseudo-Dixon channels. The rim check
    (subcutaneous fat bright) guards the T1 path against a T2 or water image given by mistake;
    a declared T2/PD stack, often with a field of view narrower than the body, skips it."""
    body = body_mask(ndimage.gaussian_filter(image, sigma=(0.7, 0.7, 0)))
    if body.sum() < 1000:
        raise InputError(source, "no body found in the image (is it empty or all noise?)")
    if weighting == "t1":
        _check_fat_is_bright(image, body, source)
    corrected = correct_bias(image, body)
    scale = image_scale(corrected, body, source)
    water_like, fat_like = pseudo_dixon(corrected, scale)
    return SingleContrast(corrected, scale, water_like, fat_like, weighting)


def image_scale(corrected: np.ndarray, body: np.ndarray, source: str = "image") -> IntensityScale:
    """Lean and fat references from the body's two intensity classes (before segmentation)."""
    values = corrected[body]
    threshold = threshold_otsu(values)
    fat = float(np.median(values[values > threshold]))
    soft = values[(values <= threshold) & (values > 0.5 * threshold)]
    if soft.size < 100:
        raise InputError(source, "the image shows no soft tissue apart from fat: not a T1-weighted body image?")
    lean = float(np.median(soft))
    if fat < 1.3 * lean:
        raise InputError(source, f"fat is not bright against muscle (ratio {fat / lean:.2f}): "
                                 "the single-contrast path needs a T1-weighted image")
    return IntensityScale(lean, fat, 0.0, FAT_REFERENCE_FRACTION)


def _check_fat_is_bright(image: np.ndarray, body: np.ndarray, source: str) -> None:
    """The body's outer rim (subcutaneous fat) must be mostly the bright class, as on T1. The
    outline here is anything clearly above the air (three times the signal at the volume's
    edges), so that a rim of suppressed fat (a water or T2 image) is still inside it."""
    edges = np.concatenate([image[[0, -1]].ravel(), image[:, [0, -1]].ravel()])
    smooth = ndimage.gaussian_filter(image, sigma=(1.0, 1.0, 0))
    outline = smooth > max(3.0 * float(np.median(edges)), 0.02 * float(np.percentile(image, 99)))
    outline = np.stack([ndimage.binary_fill_holes(outline[:, :, k]) for k in range(image.shape[2])], -1)
    plane = np.ones((3, 3, 1), bool)
    inner = ndimage.binary_erosion(outline, plane)  # the outermost voxel is partly air
    rim = inner & ~ndimage.binary_erosion(inner, plane, iterations=2)
    share = float(np.mean(image[rim] > threshold_otsu(image[body]))) if rim.any() else 0.0
    if share < 0.5:
        raise InputError(source, f"the subcutaneous fat is not bright ({share:.0%} of the body's rim is): "
                                 "the built-in segmenter needs a T1-weighted image (a water or T2 image? an axial "
                                 "T2 stack comes in with its labels: --image-contrast t2 --labels ...)")


def pseudo_dixon(corrected: np.ndarray, scale: IntensityScale) -> tuple[np.ndarray, np.ndarray]:
    """Water-like and fat-like channels: fat/(water+fat) is the clipped lean-to-fat position,
    water+fat is 1 for tissue at least as bright as lean muscle and falls with the signal below
    it (bone, air), as total signal does on Dixon.

    One ambiguity is removed first: a voxel partly dark (bone, air) and partly fat reads grey,
    like muscle, where Dixon would show it fatty. Voxels that are neither dark nor bright but
    touch a dark voxel and lie within two voxels of a bright one (in-plane), or lie between a
    dark and a bright voxel across slices, are taken for such mixtures (the body's outline, the fat around the spinous process, laminae and iliac wings)
    and given to fat; grey voxels dimmer than DIM_SHARE of lean muscle that touch a dark voxel
    are taken for bone's partial volume and left out of the soft tissue."""
    position = np.clip((corrected - scale.lean_signal) / (scale.fat_signal - scale.lean_signal), 0.0, 1.0)
    total = np.clip((corrected / scale.lean_signal - DARK_SHARE) / (1 - DARK_SHARE), 0.0, 1.0)
    dark = corrected < DARK_SHARE * scale.lean_signal
    bright = position > BRIGHT_POSITION
    grey = ~dark & ~bright
    near_dark = ndimage.binary_dilation(dark, np.ones((3, 3, 1), bool)) & grey
    mixed = near_dark & ndimage.binary_dilation(bright, np.ones((5, 5, 1), bool))
    # the same across slices (thick slices): bone on one side, fat on the other
    dark_z, bright_z = _beside_in_z(dark), _beside_in_z(bright)
    mixed |= grey & dark_z & (bright_z | ndimage.binary_dilation(bright, np.ones((5, 5, 1), bool)))
    near_dark |= grey & dark_z
    position[mixed] = 1.0
    total[mixed] = 1.0
    total[near_dark & ~mixed & (corrected < DIM_SHARE * scale.lean_signal)] = 0.0
    return (total * (1 - position)).astype(np.float32), (total * position).astype(np.float32)


def _beside_in_z(mask: np.ndarray) -> np.ndarray:
    """True where the slice above or below holds `mask` at the same place."""
    out = np.zeros_like(mask)
    out[:, :, 1:] |= mask[:, :, :-1]
    out[:, :, :-1] |= mask[:, :, 1:]
    return out


def calibrate_on_psoas(corrected: np.ndarray, labels: np.ndarray, scale: IntensityScale) -> IntensityScale:
    """The same scale with the lean reference moved to the psoas (LEAN_REFERENCE_FRACTION fat)."""
    # an imported iliopsoas above the iliac crest is psoas (imaging.morphometry.MERGED)
    psoas = np.isin(labels, [ROW_LABELS[(muscle, side)] for muscle in ("psoas", "iliopsoas") for side in ("left", "right")])
    if psoas.sum() < MIN_PSOAS_VOXELS:
        return scale
    return IntensityScale(float(np.median(corrected[psoas])), scale.fat_signal, LEAN_REFERENCE_FRACTION,
                          scale.fat_reference_fraction)

"""The Rician noise sigma of each Dixon channel, wherever it can be measured.

The noise floor comes off a muscle's fat and water signals (imaging.quantify), so sigma must be
right: with sigma 0 a lean muscle's near-empty fat channel reads its noise floor, about
1.25 sigma (Rayleigh mean sigma sqrt(pi/2)), as fat (0.06 too fatty at a water SNR of 20).

1. From the air around the body (Rayleigh: E[M^2] = 2 sigma^2; Sijbers et al. 2007, Phys Med
   Biol 52:1335), as before. It cannot be measured where the vendor set the background to
   exactly zero (`ZERO_BACKGROUND_SHARE` of the air voxels are exactly 0: a Rayleigh magnitude
   is 0 with probability about 0) or where the field of view holds no air (`MIN_AIR_VOXELS`).
2. Then inside the body: the mode of the local standard deviation of the bright voxels of each
   channel (water in muscle, fat in subcutaneous fat), where the signal is high enough for the
   Rician distribution to be Gaussian with standard deviation sigma (Aja-Fernandez et al. 2009,
   Magn Reson Imaging 27:1397, the mode of the local-moment distribution). Homogeneous tissue
   gives the mode; edges and texture give the long upper tail.
3. Where neither works, sigma is 0 and a warning gives the size of the bias.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

#: At least this many air voxels to read the background.
MIN_AIR_VOXELS = 100
#: More than this share of exact zeros in the air: the vendor masked the background.
ZERO_BACKGROUND_SHARE = 0.5
#: In-plane window of the local standard deviation (voxels): 25 samples per estimate.
WINDOW = 5
#: Voxels whose local mean is at least this share of the channel's 95th percentile in the body
#: are bright (SNR above about 10 at any usable noise level: Gaussian, not Rician).
BRIGHT_SHARE = 0.5
MIN_BRIGHT_VOXELS = 500


@dataclass(frozen=True)
class NoiseEstimate:
    water: float
    fat: float
    method: str  # "background", "inside the body" or "none"
    warnings: list[str] = field(default_factory=list)

    def provenance(self) -> dict:
        return {"water": round(self.water, 6), "fat": round(self.fat, 6), "from": self.method}


def estimate_noise(water: np.ndarray, fat: np.ndarray, spacing_mm=None) -> NoiseEstimate:
    """Rician sigma of each channel (canonical (X, Y, Z) magnitude arrays, same units as the
    images), from the background where it can be read, else from inside the body."""
    body, air = _body_and_air(water, fat)
    if air.sum() >= MIN_AIR_VOXELS:
        zeros = float(np.mean((water[air] == 0) & (fat[air] == 0)))
        if zeros <= ZERO_BACKGROUND_SHARE:
            return NoiseEstimate(float(np.sqrt(np.mean(water[air] ** 2) / 2)),
                                 float(np.sqrt(np.mean(fat[air] ** 2) / 2)), "background")
        reason = f"the background is exactly zero in {100 * zeros:.0f} % of the air (masked by the scanner?)"
    else:
        reason = "the field of view holds no air"
    sigma_w, sigma_f = inside_body_sigma(water, body), inside_body_sigma(fat, body)
    if sigma_w > 0 and sigma_f > 0:
        return NoiseEstimate(sigma_w, sigma_f, "inside the body", [
            f"noise not measurable in the background ({reason}): Rician sigma estimated inside the body from "
            f"homogeneous tissue, water {sigma_w:.4g}, fat {sigma_f:.4g} (image units)"])
    return NoiseEstimate(0.0, 0.0, "none", [
        f"noise not measurable ({reason}, and no homogeneous bright tissue): the noise floor is not removed, so "
        "a lean muscle's fat fraction reads high by about 1.25 / (its water signal-to-noise ratio), e.g. 0.06 "
        "at 20"])


def inside_body_sigma(channel: np.ndarray, body: np.ndarray) -> float:
    """Mode of the local standard deviation (WINDOW x WINDOW in-plane) over the channel's bright
    voxels inside the body, corrected for the mode of a 25-sample standard deviation
    (sigma sqrt((n - 2) / (n - 1)), the chi distribution's mode); 0 when too few are bright."""
    size = (WINDOW, WINDOW, 1)
    mean = ndimage.uniform_filter(channel.astype(np.float64), size)
    square = ndimage.uniform_filter(channel.astype(np.float64) ** 2, size)
    n = WINDOW * WINDOW
    std = np.sqrt(np.maximum(square - mean**2, 0.0) * n / (n - 1))
    inner = np.stack([ndimage.binary_erosion(body[:, :, k], iterations=WINDOW) for k in range(body.shape[2])], -1)
    if not inner.any():
        return 0.0
    bright = inner & (mean >= BRIGHT_SHARE * np.percentile(channel[inner], 95))
    if bright.sum() < MIN_BRIGHT_VOXELS:
        return 0.0
    values = std[bright]
    top = np.percentile(values, 90)
    if top <= 0:
        return 0.0
    counts, edges = np.histogram(values, bins=200, range=(0.0, top))
    counts = ndimage.gaussian_filter1d(counts.astype(float), 3)
    k = int(np.argmax(counts))
    mode = 0.5 * (edges[k] + edges[k + 1])
    return float(mode / np.sqrt((n - 2) / (n - 1)))


def _body_and_air(water: np.ndarray, fat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The body on the smoothed total signal (on the raw one, noise peaks in the air would pass
    the threshold and leave only the quieter air voxels) and the air around it."""
    total = ndimage.gaussian_filter(water + fat, 1.5)
    body = ndimage.binary_fill_holes(total > 0.2 * np.percentile(total, 99))
    air = ~ndimage.binary_dilation(body, iterations=3)
    return body, air

"""Data augmentation for training batches: random shifts, rotations, scaling and elastic
distortion (Simard et al. 2003), applied on the fly per batch.

Every random draw comes from the caller's seeded ``numpy.random.Generator``, here in
Python; the one kernel, ``kernels.augment.warp_forward``, applies the drawn parameters
(a 2x3 matrix and a displacement field per image) by bilinear resampling.

An augmentation is given as a spec: an integer ``N`` (shifts of up to ``N`` pixels, the
form stored by older configurations) or ``key=value`` pairs separated by commas, e.g.
``shift=2,rotate=10,scale=0.1,elastic=34:4``:

- ``shift=N``: translate by a whole number of pixels in ``[-N, N]`` per axis (0..8);
- ``rotate=DEG``: rotate about the centre by an angle in ``[-DEG, DEG]`` degrees (0..180);
- ``scale=F``: scale about the centre by a factor in ``[1 - F, 1 + F]`` (0 <= F < 1);
- ``elastic=ALPHA:SIGMA``: displace each pixel by ``ALPHA`` times a uniform(-1, 1)
  random field smoothed by a Gaussian of standard deviation ``SIGMA`` pixels (zeros
  beyond the border); Simard et al. use 34:4 on MNIST.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np

from kernels.augment import warp_forward

EXAMPLE = "shift=2,rotate=10,scale=0.1,elastic=34:4"
MAX_SHIFT = 8
MAX_SIGMA = 100.0


@dataclasses.dataclass(frozen=True)
class AugmentSpec:
    """What to draw for each image (all zero: no augmentation).

    Attributes
    ----------
    shift : int
        Largest translation in pixels per axis.
    rotate : float
        Largest rotation angle in degrees.
    scale : float
        Largest relative change of size.
    elastic_alpha, elastic_sigma : float
        Strength (pixels) and smoothness (pixels) of the elastic field; alpha 0: none.
    """

    shift: int = 0
    rotate: float = 0.0
    scale: float = 0.0
    elastic_alpha: float = 0.0
    elastic_sigma: float = 0.0

    def __str__(self) -> str:
        """The canonical spec text (``"0"`` for none), which :func:`parse_augment` reads back."""
        parts = [f"shift={self.shift}"] if self.shift else []
        parts += [f"rotate={_num(self.rotate)}"] if self.rotate else []
        parts += [f"scale={_num(self.scale)}"] if self.scale else []
        if self.elastic_alpha:
            parts.append(f"elastic={_num(self.elastic_alpha)}:{_num(self.elastic_sigma)}")
        return ",".join(parts) or "0"


def _num(v: float) -> str:
    return str(int(v)) if v == int(v) else repr(v)


def _number(key: str, text: str, ok, expected: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and ok(value)):
        raise ValueError(f"augment: {key} must be {expected}, got {text!r}")
    return value


def _shift(text: str) -> int:
    if not text.strip().isdigit() or int(text) > MAX_SHIFT:
        raise ValueError(f"augment: shift must be an integer from 0 to {MAX_SHIFT}, got {text!r}")
    return int(text)


def _elastic(text: str) -> tuple[float, float]:
    alpha, sep, sigma = text.partition(":")
    if not sep:
        raise ValueError(f"augment: elastic must be ALPHA:SIGMA (e.g. elastic=34:4), got {text!r}")
    return (
        _number("elastic alpha", alpha, lambda v: v >= 0, "a number >= 0"),
        _number("elastic sigma", sigma, lambda v: 0 < v <= MAX_SIGMA,
                f"a number > 0 and at most {MAX_SIGMA:g}"),
    )  # fmt: skip


@functools.lru_cache(maxsize=64)
def _parse_text(text: str) -> AugmentSpec:
    if text.strip().isdigit():
        return AugmentSpec(shift=_shift(text))
    values: dict[str, Any] = {}
    for item in text.split(","):
        key, sep, value = (s.strip() for s in item.partition("="))
        if not sep:
            raise ValueError(f"augment: expected an integer or a spec like {EXAMPLE}, got {text!r}")
        if key in values:
            raise ValueError(f"augment: {key} is given twice in {text!r}")
        parse = {
            "shift": _shift,
            "rotate": lambda v: _number("rotate", v, lambda d: 0 <= d <= 180, "in [0, 180]"),
            "scale": lambda v: _number("scale", v, lambda f: 0 <= f < 1, "in [0, 1)"),
            "elastic": _elastic,
        }.get(key)
        if parse is None:
            raise ValueError(
                f"augment: unknown key {key!r} in {text!r} (expected shift, rotate, scale, elastic)"
            )
        values[key] = parse(value)
    alpha, sigma = values.pop("elastic", (0.0, 0.0))
    return AugmentSpec(**values, elastic_alpha=alpha, elastic_sigma=sigma if alpha else 0.0)


def parse_augment(spec: int | str | AugmentSpec) -> AugmentSpec:
    """Read an augmentation spec (see the module docstring).

    Parameters
    ----------
    spec : int, str or AugmentSpec
        ``2`` or ``"2"`` (shifts of up to 2 pixels), ``"shift=2,rotate=10"``, ...

    Returns
    -------
    AugmentSpec

    Raises
    ------
    ValueError
        One line naming what is wrong.
    """
    if isinstance(spec, AugmentSpec):
        return spec
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        return _parse_text(f"shift={spec}")
    if not isinstance(spec, str):
        raise ValueError(f"augment: expected an integer or a spec like {EXAMPLE}, got {spec!r}")
    return _parse_text(spec)


def canonical_augment(spec: int | str | AugmentSpec) -> int | str:
    """The form stored in a configuration: the shift as an int when the spec is only a
    shift (so that ``2`` and ``"shift=2"`` are the same run), else the canonical text."""
    parsed = parse_augment(spec)
    only_shift = dataclasses.replace(parsed, shift=0) == AugmentSpec()
    return parsed.shift if only_shift else str(parsed)


def affine_matrices(
    offsets: np.ndarray, angles: np.ndarray, scales: np.ndarray, height: int, width: int
) -> np.ndarray:
    """Per-image maps from output to input pixel coordinates (row, column, 1).

    Parameters
    ----------
    offsets : ndarray (N, 2)
        Translations in pixels: output pixel ``p`` shows input pixel ``p + offset``.
    angles : ndarray (N,)
        Rotations about the image centre, in degrees (counterclockwise on screen, as
        ``np.rot90``, for positive angles).
    scales : ndarray (N,)
        Size factors about the centre (2: the content looks twice as large).
    height, width : int
        Image size.

    Returns
    -------
    ndarray float64 (N, 2, 3), for ``kernels.augment.warp_forward``.
    """
    a = np.deg2rad(np.asarray(angles, np.float64))
    cos, sin = np.cos(a) / scales, np.sin(a) / scales
    m = np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], 1)  # (N, 2, 2)
    centre = np.array([(height - 1) / 2, (width - 1) / 2])
    t = centre - m @ centre + np.asarray(offsets, np.float64)
    return np.concatenate([m, t[:, :, None]], axis=2)


@functools.lru_cache(maxsize=8)
def gaussian_matrix(size: int, sigma: float) -> np.ndarray:
    """``G`` with ``G @ v`` the Gaussian smoothing of ``v`` (length ``size``), zeros
    beyond the ends: scipy.ndimage's ``gaussian_filter1d(v, sigma, mode="constant")``
    (truncated at 4 sigma, weights normalised over the whole kernel).

    Returns
    -------
    ndarray float64 (size, size), read-only.
    """
    radius = int(4 * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    d = np.arange(size)[:, None] - np.arange(size)[None, :]
    g = np.where(np.abs(d) <= radius, np.exp(-0.5 * (d / sigma) ** 2), 0.0) / taps.sum()
    g.flags.writeable = False
    return g


def elastic_fields(noise: np.ndarray, alpha: float, sigma: float) -> np.ndarray:
    """Simard et al.'s displacement fields: ``alpha`` times ``noise`` smoothed by a
    Gaussian of standard deviation ``sigma`` along rows and columns.

    Parameters
    ----------
    noise : ndarray float32 or float64 (N, 2, H, W)
        Uniform(-1, 1) draws.
    alpha, sigma : float

    Returns
    -------
    ndarray (N, 2, H, W) in the dtype of ``noise``, displacements in pixels.
    """
    _, _, h, w = noise.shape
    g_h, g_w = (gaussian_matrix(size, sigma).astype(noise.dtype) for size in (h, w))
    return noise.dtype.type(alpha) * (g_h @ noise @ g_w.T)


def augment_batch(
    x: np.ndarray,
    spec: int | str | AugmentSpec,
    rng: np.random.Generator,
    rows: slice | None = None,
) -> np.ndarray:
    """Apply random augmentations drawn from ``rng`` to each image of a batch.

    The draws, in this order and only for the parts of ``spec`` that are set: shifts
    ``rng.integers(0, 2 * shift + 1, (N, 2)) - shift``, angles ``rng.uniform(-rotate,
    rotate, N)``, scales ``rng.uniform(1 - scale, 1 + scale, N)``, elastic noise
    ``2 * rng.random((N, 2, H, W), dtype=x.dtype) - 1``, smoothed in ``x.dtype`` (float32
    draws and products are 1.7x and 6x faster than float64 ones here). A shift-only spec gives what
    :func:`random_shift` gives.

    Parameters
    ----------
    x : ndarray float32 or float64 (N, C, H, W)
        A batch; not modified.
    spec : int, str or AugmentSpec
        See :func:`parse_augment`.
    rng : numpy.random.Generator
    rows : slice, optional
        Augment and return only these images, with the draws made for the whole batch:
        ``augment_batch(x, spec, rng, rows)`` is ``augment_batch(x, spec, rng)[rows]`` at
        the cost of ``rows`` alone (an MPI rank's part of a global batch).

    Returns
    -------
    ndarray, same shape and dtype as ``x`` (``x`` itself when ``spec`` is empty), or as
    ``x[rows]``.
    """
    spec = parse_augment(spec)
    if dataclasses.replace(spec, shift=0) == AugmentSpec():
        return random_shift(x, spec.shift, rng, rows)
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        raise ValueError(f"augment_batch: x must be an array (N, C, H, W), got {np.shape(x)}")
    n, _, h, w = x.shape
    s = spec.shift
    offsets = rng.integers(0, 2 * s + 1, size=(n, 2)) - s if s else np.zeros((n, 2))
    angles = rng.uniform(-spec.rotate, spec.rotate, (n,)) if spec.rotate else np.zeros(n)
    scales = rng.uniform(1 - spec.scale, 1 + spec.scale, (n,)) if spec.scale else np.ones(n)
    rows = slice(None) if rows is None else rows
    field = None
    if spec.elastic_alpha:
        noise = 2 * rng.random((n, 2, h, w), dtype=x.dtype) - 1
        field = elastic_fields(noise[rows], spec.elastic_alpha, spec.elastic_sigma)
    matrices = affine_matrices(offsets[rows], angles[rows], scales[rows], h, w)
    return warp_forward(x[rows], matrices, field)


def random_shift(
    x: np.ndarray, max_shift: int, rng: np.random.Generator, rows: slice | None = None
) -> np.ndarray:
    """Translate each image by a random whole number of pixels, filling with zeros.

    Parameters
    ----------
    x : ndarray (N, C, H, W)
        A batch; not modified.
    max_shift : int
        Shifts are drawn uniformly from ``[-max_shift, max_shift]`` per image and axis
        (``rng.integers(0, 2 * max_shift + 1, (N, 2))``).
    rng : numpy.random.Generator
    rows : slice, optional
        Shift and return only these images (the draws are made for all): see
        :func:`augment_batch`.

    Returns
    -------
    ndarray, same shape and dtype as ``x`` (``x`` itself when ``max_shift`` is 0), or as
    ``x[rows]``.
    """
    if isinstance(max_shift, bool) or not isinstance(max_shift, (int, np.integer)) or max_shift < 0:
        raise ValueError(f"random_shift: max_shift must be an integer >= 0, got {max_shift!r}")
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        raise ValueError(f"random_shift: x must be an array (N, C, H, W), got {np.shape(x)}")
    if max_shift == 0:
        return x if rows is None else x[rows]
    n, _, h, w = x.shape
    rows = slice(None) if rows is None else rows
    offsets = (rng.integers(0, 2 * max_shift + 1, size=(n, 2)) - max_shift)[rows]
    m = len(offsets)
    return warp_forward(x[rows], affine_matrices(offsets, np.zeros(m), np.ones(m), h, w))

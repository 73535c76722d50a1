"""The register tile of fastnet's register-blocked kernels, chosen for the host's SIMD ISA.

A register tile computes ``PIXELS`` outputs times a block of ``BLOCK = 16`` channels: one
accumulator of 16 values per pixel, which the compiler keeps in ``V = 16 * itemsize * 8 /
vector_bits`` vector registers (one zmm of float32 on AVX-512, two ymm on AVX2, four q
registers on NEON). Each step of the reduction loads ``V`` weight vectors, broadcasts one
input value per pixel and issues ``PIXELS * V`` fused multiply-adds. The rule:

- enough independent accumulators to hide the FMA latency: ``PIXELS * V >= chains``, with
  ``chains`` = FMA latency x FMAs per cycle (llvm-mca's models: 8 on Zen 3 and Skylake-AVX512,
  10 on Haswell, 8 on Zen 5 with two 512-bit FMAs per cycle, 16 on Neoverse-V1);
- few loads per FMA: each step loads ``PIXELS + V`` values for ``PIXELS * V`` FMAs, so a
  longer tile is better until it spills;
- everything in registers: ``PIXELS * V`` accumulators + ``V`` weight vectors + one
  broadcast <= ``registers`` (16 ymm on AVX2, 32 zmm on AVX-512, 32 q on NEON);
- one general-purpose register per pixel for its input offset: ``PIXELS <= offsets``, 8 on
  x86-64 (16 registers, the rest hold the loop's counters and pointers), 16 on AArch64
  (31). Measured on a Zen 5 (AVX-512, float32, one thread, the VGG layers): 8 pixels ran at
  126-171 GFLOP/s, 12 at 104-128 and 16 at 106-150 (the offsets spill), 4 at 101-118.

``tile(isa, dtype, channels)`` returns the largest ``PIXELS`` that fits, capped at
``MAX_ACCUMULATORS`` vector accumulators. Where the loads still cannot keep up (one
broadcast per FMA: 16 lanes of float32 on AVX-512 with two 512-bit FMAs per cycle, a layer
of 16 channels) and no wider tile applies, the tile grows past ``offsets`` to 16 pixels that
read consecutive inputs through one offset (the convolution lays its rows out so that they
do), which cuts the loads per FMA from ``(8 + 2) / 8`` to ``(16 + 2) / 16``.

The ISA is read once, from the CPU Numba compiles for (``NUMBA_CPU_NAME`` /
``NUMBA_CPU_FEATURES`` if set, else llvmlite's host CPU), and
``FASTNET_ISA=avx512|avx2|neon|generic`` forces a variant (for tests and comparisons; the
compiled code still targets the CPU Numba compiles for).
"""

from __future__ import annotations

import functools
import os
import platform
from typing import Any, NamedTuple

import numpy as np

BLOCK = 16  # channels per tile: the weight packing (O/16, K, 16) of the conv kernels
MAX_ACCUMULATORS = 16
MAX_LANES = 2 * BLOCK


class Isa(NamedTuple):
    """A SIMD instruction set as the tile rule sees it."""

    name: str
    vector_bits: int  # width of one vector register
    registers: int  # vector registers the compiler can allocate
    chains: int  # independent FMA chains needed to keep the FMA units busy
    offsets: int  # general-purpose registers free for the pixels' input offsets
    fmas: int  # vector FMAs issued per cycle
    loads: int  # loads issued per cycle


ISAS = {
    # AVX-512 as on Skylake-SP: two 512-bit FMAs and two loads per cycle (Zen 4 does one
    # 512-bit FMA per cycle, Zen 5 two, with up to four loads)
    "avx512": Isa("avx512", 512, 32, 8, 8, 2, 2),
    "avx2": Isa("avx2", 256, 16, 10, 8, 2, 2),
    "neon": Isa("neon", 128, 32, 16, 16, 4, 3),  # Neoverse-V1
    "generic": Isa("generic", 128, 16, 8, 8, 2, 2),  # SSE2: x86-64's baseline
}

# Cores whose FMA or load throughput differs from their ISA's entry in ISAS.
CORES = {
    "znver4": {"fmas": 1},  # 512-bit FMAs in two 256-bit halves: one per cycle
    "znver5": {"loads": 4},
}

# CPU names (as LLVM spells them) whose default features include AVX-512F or AVX2, for a
# NUMBA_CPU_NAME given without NUMBA_CPU_FEATURES (LLVM then uses the CPU's defaults).
_AVX512_CPUS = frozenset(
    "skylake-avx512 cascadelake cooperlake cannonlake icelake-client icelake-server "
    "tigerlake sapphirerapids emeraldrapids graniterapids graniterapids-d rocketlake "
    "znver4 znver5 x86-64-v4".split()
)
_AVX2_CPUS = frozenset(
    "haswell broadwell skylake alderlake raptorlake meteorlake arrowlake lunarlake "
    "gracemont sierraforest grandridge znver1 znver2 znver3 x86-64-v3".split()
)


def isa_of(cpu_name: str, features: str) -> str:
    """The ISA of code compiled for ``cpu_name`` with LLVM feature string ``features``
    (``"+avx2,+fma,-avx512f"``; empty: the CPU's defaults)."""
    flags = {f[1:]: f[0] == "+" for f in features.split(",") if f[:1] in "+-" and f[1:]}
    if cpu_name.startswith(("apple", "cortex", "neoverse")) or "neon" in flags:
        return "neon"
    if flags.get("avx512f", cpu_name in _AVX512_CPUS and not features):
        return "avx512"
    if flags.get("avx2", cpu_name in _AVX2_CPUS and not features) and flags.get("fma", True):
        return "avx2"
    return "generic"


def _target() -> tuple[str, str]:
    """CPU name and feature string that Numba compiles for."""
    from numba.core import config

    if config.CPU_NAME:
        return config.CPU_NAME, config.CPU_FEATURES or ""
    import llvmlite.binding as llvm

    return llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()


@functools.cache
def host() -> Isa:
    """The ISA entry the register tiles are shaped for: that of ``host_isa()``, with the
    throughputs of the core Numba compiles for when ``CORES`` knows it (not when forced)."""
    name = host_isa()
    forced = bool(os.environ.get("FASTNET_ISA", "").strip())
    core: dict[str, Any] = {} if forced else CORES.get(_target()[0], {})
    return ISAS[name]._replace(**core) if name in ("avx512", "avx2") else ISAS[name]


class IsaError(ValueError):
    """``$FASTNET_ISA`` names no ISA of :data:`ISAS` (bad input, not a bug: a command line
    maps it to a usage error)."""


def forced_isa() -> str | None:
    """``$FASTNET_ISA``, checked (None when unset or empty); cheap, for an early check.

    Raises
    ------
    IsaError
        It is set to a name not in :data:`ISAS`.
    """
    forced = os.environ.get("FASTNET_ISA", "").strip().lower()
    if forced and forced not in ISAS:
        raise IsaError(f"FASTNET_ISA must be one of {', '.join(ISAS)} (or unset), got {forced!r}")
    return forced or None


@functools.cache
def host_isa() -> str:
    """The ISA the register tiles are shaped for: ``$FASTNET_ISA`` if set, else that of the
    CPU Numba compiles for. Read once per process (:class:`IsaError` for a bad name)."""
    forced = forced_isa()
    if forced:
        return forced
    if platform.machine().lower() in ("arm64", "aarch64"):
        return "neon"
    return isa_of(*_target())


def tile(spec: Isa, dtype: np.dtype | type, channels: int) -> tuple[int, int]:
    """``(pixels, lanes)``: the register tile for ISA entry ``spec``, element type ``dtype``
    and tiles over ``channels`` output channels (the rule above): ``lanes`` is 16 or, where
    the loads of a 16-lane tile cannot keep up with its FMAs and ``channels > 16``, 32. A
    tile that stays load-bound with ``spec.offsets`` pixels (16 lanes of float32 on a core
    with two 512-bit FMAs) gets as many pixels as its registers hold: such a long tile reads
    a row of consecutive inputs through one offset (``kernels.conv.tile_ir``)."""
    lanes = BLOCK
    while True:
        vectors = max(1, lanes * np.dtype(dtype).itemsize * 8 // spec.vector_bits)
        fits = (spec.registers - vectors - 1) // vectors
        longest = max(1, min(fits, MAX_ACCUMULATORS // vectors))
        pixels = min(longest, spec.offsets)
        if (pixels + vectors + 1) * spec.fmas <= pixels * vectors * spec.loads:
            return pixels, lanes  # fed
        wider_fits = spec.registers - 2 * vectors - 1 >= 2 * vectors
        if lanes >= MAX_LANES or lanes >= channels or not wider_fits:
            return longest, lanes
        lanes *= 2

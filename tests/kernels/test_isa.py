"""The register-tile rule of kernels._isa: ISA detection, the override, and the tile shapes."""

import numpy as np
import pytest

from kernels import _isa


@pytest.mark.parametrize(
    "cpu, features, expected",
    [
        ("haswell", "", "avx2"),
        ("znver3", "", "avx2"),
        ("skylake-avx512", "", "avx512"),
        ("icelake-server", "", "avx512"),
        ("znver4", "", "avx512"),
        ("znver5", "+avx2,+fma,+avx512f", "avx512"),
        ("znver4", "+avx2,+fma,-avx512f", "avx2"),  # features win over the name
        ("x86-64", "", "generic"),
        ("generic", "+sse2", "generic"),
        ("haswell", "+avx2,-fma", "generic"),
        ("neoverse-v1", "", "neon"),
        ("apple-m1", "", "neon"),
    ],
)
def test_isa_of_cpu_name_and_features(cpu, features, expected):
    assert _isa.isa_of(cpu, features) == expected


@pytest.mark.parametrize("name", list(_isa.ISAS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels", [1, 16, 32, 64])
def test_tile_fits_the_registers_and_hides_the_fma_latency(name, dtype, channels):
    spec = _isa.ISAS[name]
    pixels, lanes = _isa.tile(spec, dtype, channels)
    assert lanes in (16, 32) and lanes % _isa.BLOCK == 0
    vectors = max(1, lanes * np.dtype(dtype).itemsize * 8 // spec.vector_bits)
    assert pixels * vectors + vectors + 1 <= spec.registers or pixels == 1
    assert 1 <= pixels <= max(spec.offsets, _isa.MAX_ACCUMULATORS // vectors)
    if pixels > spec.offsets:  # a long tile only where the offsets' tile is load-bound
        short = spec.offsets
        assert (short + vectors + 1) * spec.fmas > short * vectors * spec.loads
    # as many accumulators as the latency needs, unless one more pixel would not fit
    bigger = (pixels + 1) * vectors + vectors + 1 > spec.registers or pixels == spec.offsets
    assert pixels * vectors >= spec.chains or bigger or pixels * vectors >= 16


@pytest.mark.parametrize(
    "name, dtype, channels, expected",
    [
        ("avx512", np.float32, 16, (16, 16)),  # 8 pixels: (8 + 2) loads per 8 FMAs: 16
        ("avx512", np.float32, 1, (16, 16)),
        ("avx512", np.float32, 64, (8, 32)),  # two loads per cycle: 2 zmm per pixel
        ("avx2", np.float32, 64, (6, 16)),  # 12 ymm accumulators + 2 weights + 1 broadcast
        ("neon", np.float32, 64, (4, 16)),  # 16 q accumulators, 4 per pixel
        ("avx512", np.float64, 64, (8, 16)),  # 16 zmm of float64
    ],
)
def test_tile_of_each_isa(name, dtype, channels, expected):
    assert _isa.tile(_isa.ISAS[name], dtype, channels) == expected


def test_core_throughputs_change_the_tile():
    zen4 = _isa.ISAS["avx512"]._replace(**_isa.CORES["znver4"])
    assert _isa.tile(zen4, np.float32, 64) == (8, 16)  # one zmm FMA per cycle: 16 lanes fed


def test_override_forces_a_variant(monkeypatch):
    _isa.host_isa.cache_clear()
    _isa.host.cache_clear()
    try:
        monkeypatch.setenv("FASTNET_ISA", "avx2")
        assert _isa.host_isa() == "avx2"
        assert _isa.host() == _isa.ISAS["avx2"]
        _isa.host_isa.cache_clear()
        monkeypatch.setenv("FASTNET_ISA", "sse9")
        with pytest.raises(ValueError, match="FASTNET_ISA must be one of avx512, avx2"):
            _isa.host_isa()
    finally:
        monkeypatch.delenv("FASTNET_ISA")
        _isa.host_isa.cache_clear()
        _isa.host.cache_clear()

"""Parity tests for kernels.conv (conv2d forward and backward)."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_close, assert_grad_close, numerical_grad

import kernels.conv as conv
from kernels import _isa
from kernels.activation import relu_backward, relu_forward
from kernels.activation.reference import relu_forward_ref
from kernels.conv import reference as ref
from kernels.fused.reference import relu_maxpool2x2_forward_ref

REPO = Path(__file__).resolve().parents[2]

# (N, C, H, W, OC, KH, KW, stride, padding, bias)
CASES = [
    (1, 1, 5, 5, 1, 3, 3, 1, 0, True),  # N = C = OC = 1
    (2, 3, 7, 6, 4, 3, 3, 1, 1, True),  # odd, non-square input, padding 1
    (3, 2, 9, 8, 5, 2, 3, 2, 2, False),  # non-square kernel, stride 2, padding 2, no bias
    (2, 3, 10, 11, 2, 3, 1, (2, 3), (1, 2), True),  # unequal stride and padding
    (5, 2, 8, 7, 3, 3, 3, 3, 0, True),  # stride 3 leaves rows unread; N split unevenly
    (1, 2, 3, 4, 3, 5, 6, 1, 1, True),  # kernel as large as the padded input: OH = OW = 1
    (4, 16, 9, 9, 8, 3, 3, 1, 2, True),  # VGG-like channels, padding 2
    # Paths of kernels.conv.cpu: y and dx written in place (OC, C multiples of 16, pixels
    # multiples of 4) or through scratch; dx by pixel runs (C < 8) or channel tiles; dw over
    # several groups of images, the last one partial; a padded dx plane of 256 elements.
    (2, 1, 6, 6, 16, 3, 3, 1, 1, True),  # first layer: y in place, dx by pixel runs
    (2, 16, 12, 12, 16, 3, 3, 1, 1, True),  # y and dx in place, dx plane 16 x 16
    (7, 3, 14, 14, 16, 3, 3, 1, 1, True),  # dw in groups of 5 (4 in parallel), last partial
    (3, 20, 6, 7, 32, 3, 2, 2, 1, True),  # stride 2, dx by channel tiles through scratch
    (0, 3, 5, 5, 4, 3, 3, 1, 1, True),  # empty batch
    (2, 0, 5, 5, 4, 3, 3, 1, 1, True),  # no input channels: y = b
    (2, 3, 5, 5, 0, 3, 3, 1, 1, True),  # no output channels
]


def make_inputs(case, dtype, rng):
    n, c, h, w_, oc, kh, kw, stride, padding, bias = case
    x = rng.standard_normal((n, c, h, w_)).astype(dtype)
    w = rng.standard_normal((oc, c, kh, kw)).astype(dtype)
    b = rng.standard_normal(oc).astype(dtype) if bias else None
    return x, w, b, stride, padding


@pytest.mark.parametrize("case", [CASES[2], CASES[3], CASES[5]], ids=str)
def test_reference_backward_matches_finite_differences(case, rng):
    x, w, b, stride, padding = make_inputs(case, np.float64, rng)
    b = rng.standard_normal(w.shape[0])
    y = ref.conv2d_forward_ref(x, w, b, stride, padding)
    dy = rng.standard_normal(y.shape)

    def loss():
        return float(np.sum(ref.conv2d_forward_ref(x, w, b, stride, padding) * dy))

    dx, dw, db = ref.conv2d_backward_ref(dy, x, w, stride, padding)
    for analytic, wrt in [(dx, x), (dw, w), (db, b)]:
        assert_grad_close(analytic, numerical_grad(loss, wrt))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_kernel_matches_reference(case, dtype, parallel, rng):
    x, w, b, stride, padding = make_inputs(case, dtype, rng)
    y_ref = ref.conv2d_forward_ref(x, w, b, stride, padding)
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    inputs = [a for a in (x, w, b, dy) if a is not None]
    copies = [a.copy() for a in inputs]
    assert_close(conv.conv2d_forward(x, w, b, stride, padding, parallel=parallel), y_ref, "conv")
    grads = conv.conv2d_backward(dy, x, w, stride, padding, parallel=parallel)
    for got, expected in zip(
        grads, ref.conv2d_backward_ref(dy, x, w, stride, padding), strict=True
    ):
        assert_close(got, expected, "conv")
    for a, a_copy in zip(inputs, copies, strict=True):
        np.testing.assert_array_equal(a, a_copy)


@pytest.mark.parametrize("parts", [1, 2, 3])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_packed_forward_gives_the_bits_of_conv2d_forward(case, parts, dtype, parallel, rng):
    """Packed once, into a new array or the caller's, whole or each image in ``parts``
    runs of tiles: the same bits as ``conv2d_forward``, inputs untouched."""
    x, w, b, stride, padding = make_inputs(case, dtype, rng)
    expected = conv.conv2d_forward(x, w, b, stride, padding, parallel=parallel)
    inputs = [a for a in (x, w, b) if a is not None]
    copies = [a.copy() for a in inputs]
    packed = conv.pack_conv2d(w, b, stride, padding)
    out = np.full_like(expected, np.nan)
    got = conv.conv2d_forward_packed(x, packed, out, parallel=parallel, parts=parts)
    assert got is out
    np.testing.assert_array_equal(got, expected)
    again = conv.conv2d_forward_packed(x, packed, parallel=parallel, parts=parts)
    np.testing.assert_array_equal(again, expected)
    for a, a_copy in zip(inputs, copies, strict=True):
        np.testing.assert_array_equal(a, a_copy)


@pytest.mark.parametrize("epilogue", ["relu", "relu+maxpool2x2"])
@pytest.mark.parametrize("parts", [1, 2, 3])
@pytest.mark.parametrize("case", [c for c in CASES if c[0] * c[4] > 0], ids=str)
def test_packed_forward_epilogue_is_the_layers_after_the_convolution(
    case, parts, epilogue, dtype, parallel, rng
):
    """The fused epilogue gives the bits of ``conv2d_forward`` followed by the ReLU's and the
    fused pooling's references, NaNs included (NaN biases: whole output channels)."""
    x, w, b, stride, padding = make_inputs(case, dtype, rng)
    if b is not None:
        b[::2] = np.nan
    y = conv.conv2d_forward(x, w, b, stride, padding, parallel=parallel)
    packed = conv.pack_conv2d(w, b, stride, padding)
    if epilogue == "relu":
        expected = relu_forward_ref(y)
    elif min(y.shape[2:]) < 2:
        with pytest.raises(ValueError, match="too small to pool 2x2"):
            conv.conv2d_forward_packed(x, packed, epilogue=epilogue)
        return
    else:
        expected = relu_maxpool2x2_forward_ref(y)
    buffer = np.full_like(y, 7.0)
    got = conv.conv2d_forward_packed(
        x, packed, epilogue=epilogue, buffer=buffer, parallel=parallel, parts=parts
    )
    np.testing.assert_array_equal(got, expected)
    if epilogue != "relu":
        np.testing.assert_array_equal(buffer, y)  # the convolution, before its ReLU


@pytest.mark.parametrize("epilogue", ["", "relu+maxpool2x2"])
def test_bound_forward_gives_the_bits_of_the_packed_forward(epilogue, dtype, rng):
    """Bound once to a shape, called twice on other inputs: each time the bits of
    ``conv2d_forward_packed``, into the same array; an input of another shape, dtype or
    layout is refused with a one-line error."""
    x, w, b, stride, padding = make_inputs(CASES[6], dtype, rng)
    packed = conv.pack_conv2d(w, b, stride, padding)
    f = conv.bind_conv2d_forward(packed, x.shape, epilogue=epilogue, parts=2)
    first = f(x)
    np.testing.assert_array_equal(first, conv.conv2d_forward_packed(x, packed, epilogue=epilogue))
    x2 = rng.standard_normal(x.shape).astype(dtype)
    again = f(x2)
    assert again is first
    np.testing.assert_array_equal(again, conv.conv2d_forward_packed(x2, packed, epilogue=epilogue))
    for bad in (x[:1], x.astype(np.float16), np.asfortranarray(x)):
        with pytest.raises(ValueError, match=r"x must be a C-contiguous .* \(the shape it was"):
            f(bad)


@pytest.mark.parametrize("case", [c for c in CASES if c[0] * c[4] > 0], ids=str)
def test_fused_relu_gives_the_bits_of_the_two_kernels(case, dtype, parallel, rng):
    """``relu=True`` forward and ``relu_out`` backward: the bits of the convolution and the
    ReLU's kernels run one after the other (NaNs in the ReLU's output included); without
    ``input_grad``, no ``dx`` and the same ``dw`` and ``db``."""
    x, w, b, stride, padding = make_inputs(case, dtype, rng)
    y = conv.conv2d_forward(x, w, b, stride, padding, relu=True, parallel=parallel)
    plain = conv.conv2d_forward(x, w, b, stride, padding, parallel=parallel)
    np.testing.assert_array_equal(y, relu_forward(plain))
    np.testing.assert_array_equal(y, relu_forward_ref(plain))
    dy = rng.standard_normal(y.shape).astype(dtype)
    y.reshape(-1)[::7] = np.nan
    copies = [a.copy() for a in (dy, y, x)]
    fused = conv.conv2d_backward(dy, x, w, stride, padding, relu_out=y, parallel=parallel)
    apart = conv.conv2d_backward(relu_backward(dy, y), x, w, stride, padding, parallel=parallel)
    for got, expected in zip(fused, apart, strict=True):
        np.testing.assert_array_equal(got, expected)
    dx, dw, db = conv.conv2d_backward(
        dy, x, w, stride, padding, relu_out=y, input_grad=False, parallel=parallel
    )
    assert dx is None
    np.testing.assert_array_equal(dw, apart[1])
    np.testing.assert_array_equal(db, apart[2])
    for a, a_copy in zip((dy, y, x), copies, strict=True):
        np.testing.assert_array_equal(a, a_copy)


def test_non_contiguous_input_is_accepted(rng):
    x = rng.standard_normal((2, 3, 6, 10))[:, :, :, ::2]
    w = rng.standard_normal((2, 3, 3, 3))
    assert_close(
        conv.conv2d_forward(x, w, None, 1, 1), ref.conv2d_forward_ref(x, w, None, 1, 1), "conv"
    )


def _x(shape=(2, 3, 5, 5), dtype=np.float64):
    return np.ones(shape, dtype)


W4 = np.ones((4, 3, 3, 3))
DY = np.ones((2, 4, 5, 5))

BAD_INPUTS = [
    (lambda: conv.conv2d_forward(_x((3, 5, 5)), W4, None), r"x must have shape \(N, C, H, W\)"),
    (lambda: conv.conv2d_forward(_x(), W4[0], None), r"w must have shape \(OC, C, KH, KW\)"),
    (
        lambda: conv.conv2d_forward(_x((2, 2, 5, 5)), W4, None),
        r"w must have shape \(OC, C, KH, KW\) with C = 2",
    ),
    (lambda: conv.conv2d_forward(_x(), W4, np.ones(3)), r"b must have shape \(OC,\) = \(4,\)"),
    (lambda: conv.conv2d_forward(_x(), W4, np.ones((4, 1))), r"b must have shape \(OC,\)"),
    (lambda: conv.conv2d_forward(_x(dtype=np.int64), W4, None), "float32 or float64"),
    (lambda: conv.conv2d_forward(_x(dtype=np.float32), W4, None), "same float dtype"),
    (
        lambda: conv.conv2d_forward(_x(), np.ones((4, 3, 8, 3)), None, 1, 1),
        r"kernel \(KH, KW\) = \(8, 3\) must be non-empty and fit the padded input "
        r"\(H \+ 2\*PH, W \+ 2\*PW\) = \(7, 7\)",
    ),
    (lambda: conv.conv2d_forward(_x(), W4, None, stride=0), "stride must be >= 1, got 0"),
    (lambda: conv.conv2d_forward(_x(), W4, None, 1, (1, -1)), r"padding must be >= 0"),
    (lambda: conv.conv2d_forward(_x(), W4, None, (1, 2, 3)), "stride must be an int or a pair"),
    (
        lambda: conv.conv2d_backward(DY[:, :, :4], _x(), W4, 1, 1),
        r"dy must have shape \(N, OC, OH, OW\) = \(2, 4, 5, 5\)",
    ),
    (lambda: conv.conv2d_backward(DY.astype(np.float32), _x(), W4, 1, 1), "same float dtype"),
    (lambda: conv.conv2d_backward(DY, _x(), W4, 1, -1), "padding must be >= 0"),
    (
        lambda: conv.conv2d_backward(DY, _x(), W4, 1, 1, relu_out=DY[:1]),
        r"relu_out must have shape \(N, OC, OH, OW\) = \(2, 4, 5, 5\)",
    ),
    (
        lambda: conv.conv2d_backward(DY, _x(), W4, 1, 1, relu_out=DY.astype(np.float32)),
        "same float dtype",
    ),
]


PACKED = conv.pack_conv2d(W4, np.ones(4), 1, 1)
Y = np.zeros((2, 4, 5, 5))
BAD_INPUTS += [
    (
        lambda: conv.bind_conv2d_forward(PACKED, (2, 2, 5, 5)),
        r"bind_conv2d_forward: w must have shape \(OC, C, KH, KW\) with C = 2",
    ),
    (lambda: conv.bind_conv2d_forward(PACKED, (2, 3, 5, 5), parts=0), "parts must be an int"),
    (lambda: conv.pack_conv2d(W4, np.ones(3)), r"pack_conv2d: b must have shape \(OC,\) = \(4,\)"),
    (lambda: conv.pack_conv2d(W4, np.ones(4, np.float32)), "same float dtype"),
    (lambda: conv.pack_conv2d(W4[0]), r"w must have shape \(OC, C, KH, KW\)"),
    (lambda: conv.pack_conv2d(W4, None, 0), "stride must be >= 1, got 0"),
    (lambda: conv.pack_conv2d(W4, None, 1, -1), "padding must be >= 0"),
    (
        lambda: conv.conv2d_forward_packed(_x((2, 2, 5, 5)), PACKED),
        r"conv2d_forward_packed: w must have shape \(OC, C, KH, KW\) with C = 2",
    ),
    (lambda: conv.conv2d_forward_packed(_x((3, 5, 5)), PACKED), r"x must have shape \(N, C,"),
    (lambda: conv.conv2d_forward_packed(_x(dtype=np.float32), PACKED), "same float dtype"),
    (lambda: conv.conv2d_forward_packed(_x((2, 3, 0, 5)), PACKED), r"must be non-empty and fit"),
    (lambda: conv.conv2d_forward_packed(_x(), PACKED, Y[:1]), r"out must be .* = \(2, 4, 5, 5\)"),
    (lambda: conv.conv2d_forward_packed(_x(), PACKED, epilogue="gelu"), "epilogue must be one of"),
    (
        lambda: conv.conv2d_forward_packed(_x(), PACKED, epilogue="relu+maxpool2x2", buffer=Y[:1]),
        r"buffer must be .* \(N, OC, OH, OW\) = \(2, 4, 5, 5\)",
    ),
    (
        lambda: conv.conv2d_forward_packed(_x(), PACKED, Y, epilogue="relu+maxpool2x2"),
        r"out must be .* \(N, OC, OH // 2, OW // 2\) = \(2, 4, 2, 2\)",
    ),
    (lambda: conv.conv2d_forward_packed(_x(), PACKED, Y.astype(np.float32)), "out must be"),
    (lambda: conv.conv2d_forward_packed(_x(), PACKED, Y[..., ::-1]), "out must be a C-contig"),
    (lambda: conv.conv2d_forward_packed(_x(), PACKED, parts=0), "parts must be an int >= 1"),
]


@pytest.mark.parametrize("call, match", BAD_INPUTS)
def test_bad_input_is_rejected(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# Every register tile that kernels._isa's rule gives some ISA, per dtype: each runs here
# (the tile's shape is independent of the instructions the host compiles it to).
VARIANTS = sorted(
    {
        (np.dtype(d).name, _isa.tile(spec, d, channels))
        for spec in _isa.ISAS.values()
        for d in (np.float32, np.float64)
        for channels in (16, 32)
    }
)
VARIANT_CASES = [CASES[i] for i in (1, 8, 9, 10)]


@pytest.mark.parametrize("dtype_name, tile", VARIANTS, ids=str)
@pytest.mark.parametrize("case", VARIANT_CASES, ids=str)
def test_every_tile_variant_matches_reference(dtype_name, tile, case, rng, monkeypatch):
    monkeypatch.setattr(conv.packed, "tile", lambda dtype, channels: tile)
    x, w, b, stride, padding = make_inputs(case, np.dtype(dtype_name), rng)
    y_ref = ref.conv2d_forward_ref(x, w, b, stride, padding)
    dy = rng.standard_normal(y_ref.shape).astype(dtype_name)
    assert_close(conv.conv2d_forward(x, w, b, stride, padding), y_ref, "conv")
    got = conv.conv2d_backward(dy, x, w, stride, padding)
    for g, expected in zip(got, ref.conv2d_backward_ref(dy, x, w, stride, padding), strict=True):
        assert_close(g, expected, "conv")


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
@pytest.mark.parametrize("case", [CASES[i] for i in (8, 9, 10)], ids=str)
def test_every_tile_variant_gives_the_same_bits(dtype_name, case, rng, monkeypatch):
    """Whatever the tile (and layout: rows of the padded width, channels-last ``dw``), each
    output sums the same products in the same order, so a training run is the same on every
    ISA's variant (cases where no variant switches ``dx`` to pixel runs, or all do); the
    fused ReLU passes and the packed forward's pooling epilogue too."""
    x, w, b, stride, padding = make_inputs(case, np.dtype(dtype_name), rng)
    dy = rng.standard_normal(ref.conv2d_forward_ref(x, w, b, stride, padding).shape)
    dy = dy.astype(dtype_name)
    results, tiles = [], set()
    for _, tile in (v for v in VARIANTS if v[0] == dtype_name):
        monkeypatch.setattr(conv.packed, "tile", lambda dtype, channels, tile=tile: tile)
        y = conv.conv2d_forward(x, w, b, stride, padding)
        yr = conv.conv2d_forward(x, w, b, stride, padding, relu=True)
        packed = conv.pack_conv2d(w, b, stride, padding)
        tiles.add(packed.tile)
        pooled = conv.conv2d_forward_packed(x, packed, epilogue="relu+maxpool2x2", parts=2)
        fused = conv.conv2d_backward(dy, x, w, stride, padding, relu_out=yr)
        results.append((y, yr, pooled, *conv.conv2d_backward(dy, x, w, stride, padding), *fused))
    assert len(tiles) > 2  # the variants really ran
    for other in results[1:]:
        for got, first in zip(other, results[0], strict=True):
            np.testing.assert_array_equal(got, first)


PARITY_CHILD = """
import numpy as np
import kernels.conv as conv
from kernels import _isa
from kernels.activation import relu_backward, relu_forward
from kernels.activation.reference import relu_forward_ref
from kernels.conv import reference as ref
from kernels.fused.reference import relu_maxpool2x2_forward_ref

rng = np.random.default_rng(7)
worst = 0.0
for c, oc in ((3, 16), (16, 16), (32, 32)):
    x = rng.standard_normal((3, c, 9, 8)).astype(np.float32)
    w = rng.standard_normal((oc, c, 3, 3)).astype(np.float32)
    b = rng.standard_normal(oc).astype(np.float32)
    y = conv.conv2d_forward(x, w, b, 1, 1)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    got = (y, *conv.conv2d_backward(dy, x, w, 1, 1))
    want = (ref.conv2d_forward_ref(x, w, b, 1, 1), *ref.conv2d_backward_ref(dy, x, w, 1, 1))
    for g, e in zip(got, want):
        worst = max(worst, float(np.max(np.abs(g - e)) / np.max(np.abs(e))))
print(_isa.host_isa(), worst)
"""


@pytest.mark.parametrize("cpu, isa", [("haswell", "avx2"), ("skylake-avx512", "avx512")])
def test_code_compiled_for_another_cpu_matches_reference(cpu, isa, tmp_path):
    """Compiled for another CPU than the host (``NUMBA_CPU_NAME`` with empty features: that
    CPU's defaults), where the host can run it; an ISA the host lacks is for
    tools/isa_check.py, which compiles without running."""
    import llvmlite.binding as llvm

    features = llvm.get_host_cpu_features()
    needs = {"avx2": ("avx2", "fma"), "avx512": ("avx512f", "avx512bw", "avx512vl", "avx512dq")}
    runnable = all(features.get(f, False) for f in needs[isa])
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "NUMBA_CPU_FEATURES": ""}
    env["NUMBA_CPU_NAME"] = cpu if runnable else "x86-64"
    env.pop("FASTNET_ISA", None)
    done = subprocess.run(
        [sys.executable, "-c", PARITY_CHILD], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    name, worst = done.stdout.split()
    assert name == (isa if runnable else "generic")
    assert float(worst) < 1e-5


CACHE_NAME_CHILD = """
import kernels
from kernels.conv import cpu, tile_ir

forward = cpu.kernels(8, 16)[0].body
tile = forward.py_func.__globals__["_tile_oc"]
print(kernels.__file__, tile_ir.SOURCE_HASH)
print(forward._cache._cache_file._index_name, tile._cache._cache_file._index_name)
"""


def test_a_change_of_the_tile_code_changes_the_variants_cache_names(tmp_path):
    """Numba's cache checks a function against its own file only, and the tile's code comes
    from tile_ir.py: its source hash is part of the names of the variants' cache files, so
    that an edit of the tile compiles them afresh."""
    shutil.copytree(
        REPO / "kernels", tmp_path / "kernels", ignore=shutil.ignore_patterns("__pycache__")
    )
    tile_ir = tmp_path / "kernels" / "conv" / "tile_ir.py"
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    names = []
    for edit in ("", "# an edit\n"):
        tile_ir.write_text(tile_ir.read_text() + edit)
        done = subprocess.run(
            [sys.executable, "-c", CACHE_NAME_CHILD],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        (where, digest), files = (line.split() for line in done.stdout.splitlines())
        assert Path(where).is_relative_to(tmp_path)
        assert digest == hashlib.sha256(tile_ir.read_bytes()).hexdigest()[:12]
        assert all(f"_p8x16_{digest}" in f for f in files), files
        names.append(files)
    assert not set(names[0]) & set(names[1])

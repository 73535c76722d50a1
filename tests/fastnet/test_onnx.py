"""fastnet.onnx: export verified in onnxruntime, import of hand-built ONNX graphs (the onnx
helper API: no torch needed), round trips, and one-line errors for what fastnet lacks."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import Double, assert_close, randomize_norms
from onnx import TensorProto, helper, numpy_helper

from fastnet import layers, models
from fastnet import onnx as fonnx
from fastnet.cli import main
from fastnet.errors import OnnxError
from fastnet.module import Sequential
from fastnet.onnx.opsets import ATTRIBUTES, defined

STANDARD_OPS = {"Conv", "BatchNormalization", "Relu", "Sigmoid", "MaxPool", "AveragePool",
                "Flatten", "Gemm"}  # fmt: skip


def ort_reads(path) -> bool:
    """Whether the installed onnxruntime reads ``path``'s IR version: an older onnxruntime
    (the newest for Python 3.10 is 1.23, IR <= 11) than the onnx that wrote the file is
    compared through NumPy alone; any other error fails the test."""
    try:
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime's own exception types
        if "Unsupported model IR version" not in str(e):
            raise
        return False
    return True


def run_ort(path, x: np.ndarray) -> np.ndarray:
    """``path``'s output on ``x`` in onnxruntime (one thread, sequential)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def every_layer_model(dtype, rng) -> Sequential:
    """Each exportable layer at least once, with the options ONNX spells out."""
    return randomize_norms(Sequential(
        layers.Conv2d(3, 5, (3, 2), stride=(2, 1), padding=(1, 0), bias=False, rng=rng,
                      dtype=dtype),
        layers.BatchNorm2d(5, eps=1e-3, momentum=0.2, dtype=dtype),
        layers.Sigmoid(),
        layers.MaxPool2d(3, 1, 1),
        layers.Conv2d(5, 4, 1, rng=rng, dtype=dtype),
        layers.ReLU(),
        layers.Dropout(0.3),
        layers.AvgPool2d(2, padding=1),
        layers.Affine(4 * 4 * 5, 6, rng=rng, dtype=dtype),  # from 4-d input: a Flatten is inserted
        layers.BatchNorm1d(6, dtype=dtype),
        layers.ReLU(),
        layers.Flatten(),
        layers.Affine(6, 3, bias=False, rng=rng, dtype=dtype),
    ), rng)  # fmt: skip


def assert_same_model(loaded: Sequential, model: Sequential) -> None:
    """Same layers, hyper-parameters and state, in order, apart from Dropout (left out on
    export) and Flatten (export adds one before an Affine on 4-d input)."""
    dropped = (layers.Dropout, layers.Flatten)
    kept = [[m for m in net if type(m) not in dropped] for net in (loaded, model)]
    assert [repr(m) for m in kept[0]] == [repr(m) for m in kept[1]]
    for a, b in zip(*kept, strict=True):
        for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
            assert ka == kb and va.dtype == vb.dtype
            np.testing.assert_array_equal(va, vb)


@pytest.mark.parametrize("name", models.MODELS)
def test_every_model_exports_and_runs_the_same_in_onnxruntime(name, tmp_path, rng):
    model = randomize_norms(models.build(name, np.random.default_rng(0)), rng).eval()
    path = tmp_path / f"{name}.onnx"
    fonnx.export(model, path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert {n.op_type for n in proto.graph.node} <= STANDARD_OPS
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    for batch in (1, 100):
        x = rng.random((batch, 1, 28, 28), dtype=np.float32)
        expected, got = model(x), run_ort(path, x)
        assert_close(got, expected, "conv")
        np.testing.assert_array_equal(got.argmax(axis=1), expected.argmax(axis=1))


def test_every_layer_exports_runs_in_onnxruntime_and_loads_back(tmp_path, rng):
    model = every_layer_model(np.float32, rng).eval()
    path = tmp_path / "every.onnx"
    fonnx.export(model, path, input_shape=(3, 13, 9))
    x = rng.standard_normal((4, 3, 13, 9)).astype(np.float32)
    assert_close(run_ort(path, x), model(x), "conv")
    loaded = fonnx.load(path)
    assert not loaded.training
    assert_same_model(loaded, model)
    np.testing.assert_array_equal(loaded(x), model(x))


@pytest.mark.parametrize("name", models.MODELS)
def test_round_trip_gives_the_same_outputs_in_both_dtypes(name, dtype, tmp_path, rng):
    model = randomize_norms(models.build(name, np.random.default_rng(1), dtype=dtype), rng).eval()
    fonnx.export(model, tmp_path / "m.onnx")
    loaded = fonnx.load(tmp_path / "m.onnx")
    x = rng.random((5, 1, 28, 28)).astype(dtype)
    y = loaded(x)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, model(x))
    assert_same_model(loaded, model)


def test_a_loaded_model_fine_tunes(tmp_path, rng):
    from fastnet import optim

    fonnx.export(models.build("simple", rng), tmp_path / "m.onnx")
    net = fonnx.load(tmp_path / "m.onnx").train()
    loss_fn, opt = layers.SoftmaxCrossEntropy(), optim.SGD(net.parameters(), lr=0.1)
    x, t = rng.random((8, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 8)
    losses = []
    for _ in range(5):
        losses.append(loss_fn(net(x), t))
        net.backward(loss_fn.backward())
        opt.step()
    assert losses[-1] < losses[0]


def test_export_refuses_a_layer_without_onnx_equivalent(tmp_path, rng):
    with pytest.raises(OnnxError, match=r"layer 1 \(Double\) has no ONNX equivalent"):
        fonnx.export(Sequential(layers.Flatten(), Double()), tmp_path / "x.onnx", input_shape=(4,))
    assert not (tmp_path / "x.onnx").exists()


# -- import of graphs built with the onnx helper API -----------------------------------
def write_graph(
    path, nodes, inits, in_shape=("N", 3, 9, 8), opset=17, extra_inputs=(), out_shape=None
):
    """An ONNX file: input ``x`` float32 ``in_shape``, output ``y``, these nodes and
    initializers (name -> array), at ``opset`` and the oldest IR version that has it (onnx's
    VERSION_TABLE); before IR version 4 every initializer is a graph input too, as the
    exporters of the time wrote it."""
    opsets = [helper.make_opsetid("", opset)]
    ir_version = helper.find_min_ir_version_for(opsets)
    if ir_version < 4 and not extra_inputs:
        extra_inputs = [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(v.shape))
                        for k, v in inits.items()]  # fmt: skip
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape)), *extra_inputs],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = ir_version
    path.write_bytes(model.SerializeToString())
    return path


def f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def test_foreign_graph_with_every_supported_op_loads_and_matches_onnxruntime(tmp_path, rng):
    """Attributes as other exporters write them: Gemm with transB, alpha, beta and C (1, M),
    Identity nodes of constants (PyTorch's), a Constant ratio for Dropout, no conv bias."""
    inits = {
        "w1": f32(rng, 4, 3, 3, 3), "scale": rng.uniform(0.5, 1.5, 4).astype(np.float32),
        "shift": f32(rng, 4), "mean": f32(rng, 4), "var": rng.uniform(0.5, 2, 4).astype(np.float32),
        "w2": f32(rng, 6, 4 * 4 * 4), "c2": f32(rng, 1, 6), "b1": f32(rng, 4),
    }  # fmt: skip
    nodes = [
        helper.make_node("Identity", ["b1"], ["b1_alias"]),
        helper.make_node("Conv", ["x", "w1", "b1_alias"], ["c"], "conv", strides=[2, 1],
                         pads=[1, 0, 1, 0], kernel_shape=[3, 3], dilations=[1, 1], group=1),
        helper.make_node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["bn"],
                         "bn", epsilon=1e-3, momentum=0.8),
        helper.make_node("Relu", ["bn"], ["r"], "relu"),
        helper.make_node("MaxPool", ["r"], ["p"], "pool", kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("AveragePool", ["p"], ["a"], "avg", kernel_shape=[2, 2], strides=[1, 1],
                         pads=[1, 1, 1, 1], count_include_pad=1),
        helper.make_node("Sigmoid", ["a"], ["s"], "sigmoid"),
        helper.make_node("Identity", ["s"], ["s2"], "noop"),
        helper.make_node("Flatten", ["s2"], ["f"], "flatten", axis=1),
        helper.make_node("Constant", [], ["ratio"], value=numpy_helper.from_array(
            np.array(0.25, np.float32))),
        helper.make_node("Dropout", ["f", "ratio"], ["d", "mask"], "drop"),
        helper.make_node("Gemm", ["d", "w2", "c2"], ["y"], "fc", transB=1, alpha=0.5, beta=2.0),
    ]  # fmt: skip
    path = write_graph(tmp_path / "g.onnx", nodes, inits)
    model = fonnx.load(path)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "AvgPool2d", "Sigmoid",
                     "Flatten", "Dropout", "Affine"]  # fmt: skip
    assert model[1].eps == 1e-3 and model[1].momentum == 0.2 and model[7].p == 0.25
    x = f32(rng, 2, 3, 9, 8)
    assert_close(model(x), run_ort(path, x), "conv")


def test_old_opset_graph_with_initializers_listed_as_inputs_loads(tmp_path, rng):
    """IR version 3 style: every initializer is also a graph input; opset 10's Dropout has
    its ratio as an attribute; BatchNormalization on (N, F) gives BatchNorm1d."""
    inits = {"w": f32(rng, 5, 4), "b": f32(rng, 4), "g": np.ones(4, np.float32),
             "z": np.zeros(4, np.float32)}  # fmt: skip
    listed = [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(v.shape))
              for k, v in inits.items()]  # fmt: skip
    nodes = [
        helper.make_node("Gemm", ["x", "w", "b"], ["h"], "fc"),
        helper.make_node("BatchNormalization", ["h", "g", "b", "z", "g"], ["n"], "bn"),
        helper.make_node("Dropout", ["n"], ["y"], "drop", ratio=0.1),
    ]
    path = write_graph(tmp_path / "old.onnx", nodes, inits, ("N", 5), 10, listed)
    model = fonnx.load(path)
    assert [type(m) for m in model] == [layers.Affine, layers.BatchNorm1d, layers.Dropout]
    assert model[2].p == 0.1
    x = f32(rng, 3, 5)
    assert_close(model(x), run_ort(path, x), "conv")


W = np.ones((2, 3, 3, 3), np.float32)
BN = {k: np.ones(3, np.float32) for k in ("g", "b", "m", "v")}
# (op, attributes, initializers, input shape, part of the message)
UNSUPPORTED = {
    "op": ("Add", {}, {"w": W}, None, "operator 'Add' is not supported"),
    "dilation": ("Conv", {"dilations": [2, 2]}, {"w": W}, None, r"dilations \[2, 2\] are not"),
    "groups": ("Conv", {"group": 3}, {"w": W[:, :1]}, None, r"group=3 is not supported \(fastnet"),
    "auto_pad": ("Conv", {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, {"w": W}, None,
                 r"auto_pad='SAME_UPPER' with strides \(2, 2\) and kernel \(3, 3\) is not"),
    "auto_pad-even": ("Conv", {"auto_pad": "SAME_LOWER"}, {"w": W[..., :2, :2]}, None,
                      r"auto_pad='SAME_LOWER' with strides \(1, 1\) and kernel \(2, 2\)"),
    "auto_pad-name": ("Conv", {"auto_pad": "SAME"}, {"w": W}, None, "auto_pad='SAME' is not"),
    "asymmetric": ("Conv", {"pads": [1, 1, 0, 0]}, {"w": W}, None, r"pads \[1, 1, 0, 0\]"),
    "conv1d": ("Conv", {}, {"w": W[0]}, None, r"weight must be \(OC, C, KH, KW\)"),
    "weight-input": ("Conv", {}, {}, None, "input 'w' must be a constant"),
    "float64-weight": ("Conv", {}, {"w": W.astype(np.float64)}, None, "finite float32 values"),
    "nan-weight": ("Conv", {}, {"w": W * np.nan}, None, "finite float32 values"),
    "ceil": ("MaxPool", {"kernel_shape": [2, 2], "ceil_mode": 1, "strides": [2, 2]}, {}, None,
             r"ceil_mode=1 with strides \(2, 2\) is not supported"),
    "no-kernel": ("MaxPool", {}, {}, None, "kernel_shape is missing"),
    "big-pads": ("MaxPool", {"kernel_shape": [2, 2], "pads": [2] * 4}, {}, None, "half the"),
    "exclude-pad": ("AveragePool", {"kernel_shape": [3, 3], "pads": [1] * 4}, {}, None,
                    "count_include_pad=0"),
    "transA": ("Gemm", {"transA": 1}, {"w": W[0, 0]}, ("N", 3), "transA=1"),
    "gemm-4d": ("Gemm", {}, {"w": W[0, 0]}, None, "must have rank 2, got 4"),
    "flatten-axis": ("Flatten", {"axis": 2}, {}, None, "axis 2 is not supported"),
    "bn-training": ("BatchNormalization", {"training_mode": 1}, BN, None, "training_mode=1"),
    "attribute": ("Relu", {"alpha": 0.5}, {}, None, "attribute 'alpha' is not supported"),
    # values of older opsets' attributes (each case's opset in OPSET below)
    "bn-is_test": ("BatchNormalization", {"is_test": 0}, BN, None,
                   r"is_test=0 is not supported \(training mode"),
    "bn-is_test-unset": ("BatchNormalization", {}, BN, None,
                         r"is_test=0 \(the default before opset 7\) is not supported"),
    "bn-spatial": ("BatchNormalization", {"spatial": 0}, BN, None,
                   r"spatial=0 is not supported \(on 4-d input it is per activation"),
    "dropout-is_test": ("Dropout", {"is_test": 0, "ratio": 0.1}, {}, None, "is_test=0 is not"),
    "dropout-is_test-unset": ("Dropout", {}, {}, None, r"is_test=0 \(the default before opset 7"),
    "gemm-broadcast": ("Gemm", {"broadcast": 0}, {"w": W[0, 0], "c": W[0, 0, 0]}, ("N", 3),
                       r"broadcast=0 with C of shape \(3,\) is not supported"),
    "gemm-broadcast-unset": ("Gemm", {}, {"w": W[0, 0], "c": W[0, 0, :1]}, ("N", 3),
                             r"broadcast=0 \(the default before opset 7\) with C of shape"),
    "gemm-broadcast-rows": ("Gemm", {"broadcast": 0}, {"w": W[0, 0], "c": np.eye(2, 3,
                            dtype=np.float32)}, (2, 3), r"broadcast=0 with C of shape \(2, 3\)"),
    "gemm-c-per-sample": ("Gemm", {}, {"w": W[0, 0], "c": W[0, 0, :, :1]}, ("N", 3),
                          r"C must have shape \(N,\), \(1, N\), \(1,\) or \(\) with N = 3, got"),
}  # fmt: skip
OPSET = {"bn-is_test": 6, "bn-is_test-unset": 6, "bn-spatial": 7, "dropout-is_test": 6,
         "dropout-is_test-unset": 1, "gemm-broadcast": 6, "gemm-broadcast-unset": 6,
         "gemm-broadcast-rows": 6}  # fmt: skip


@pytest.mark.parametrize("case", UNSUPPORTED)
def test_what_fastnet_lacks_is_a_one_line_error_naming_node_and_op(case, tmp_path, capsys):
    op, attrs, inits, shape, match = UNSUPPORTED[case]
    names = list(inits) or (["w"] if op in ("Conv", "Gemm") else [])
    node = helper.make_node(op, ["x", *names], ["y"], "bad", **attrs)
    path = write_graph(tmp_path / "bad.onnx", [node], inits, shape or ("N", 3, 9, 8),
                       OPSET.get(case, 17))  # fmt: skip
    with pytest.raises(OnnxError, match=match) as e:
        fonnx.load(path)
    assert str(e.value).startswith(f"{path}: node 'bad' ({op}): ") and "\n" not in str(e.value)
    assert main(["predict", str(path), str(tmp_path / "digit.png")]) == 2
    assert capsys.readouterr().err.splitlines() == [f"fastnet predict: error: {e.value}"]


def tensor_proto(rng, **fields):
    """Initializer ``w`` (2, 3, 3, 3) with some fields overwritten; with ``dims``, its values
    are stored as ``float_data`` (not ``raw_data``) and the dims changed after."""
    values = f32(rng, 2, 3, 3, 3)
    if "dims" in fields:
        t = helper.make_tensor("w", TensorProto.FLOAT, values.shape, values.ravel())
        del t.dims[:]
        t.dims.extend(fields["dims"])
        return t
    t = numpy_helper.from_array(values, "w")
    if fields.pop("external", False):
        t.data_location = TensorProto.EXTERNAL
        t.external_data.add(key="location", value="/etc/passwd")
    for k, v in fields.items():
        setattr(t, k, v)
    return t


def malformed(tmp_path, rng, case):
    """A graph that is wrong in one way (not one unsupported op)."""
    relu = helper.make_node("Relu", ["x"], ["r"], "relu")
    conv = helper.make_node("Conv", ["x", "w"], ["y"], "conv")
    cases = {
        "branch": [relu, helper.make_node("Sigmoid", ["x"], ["y"], "sig")],
        "dangling-output": [relu, helper.make_node("Sigmoid", ["r"], ["s"], "sig")],
        "mask-used": [helper.make_node("Dropout", ["x"], ["d", "m"], "drop"),
                      helper.make_node("Add", ["d", "m"], ["y"], "add")],
        "custom-domain": [helper.make_node("Relu", ["x"], ["y"], "relu", domain="com.example")],
        "twice-defined": [helper.make_node("Relu", ["x"], ["x"], "relu")],
    }  # fmt: skip
    if case in cases:
        return write_graph(tmp_path / f"{case}.onnx", cases[case], {})
    path = write_graph(tmp_path / f"{case}.onnx", [conv], {})
    model = onnx.load(str(path))
    fields = {"external": {"external": True}, "short-data": {"raw_data": b"\0" * 7},
              "bad-dims": {"dims": [2, 3, 3, 4]}}  # fmt: skip
    model.graph.initializer.append(tensor_proto(rng, **fields[case]))
    path.write_bytes(model.SerializeToString())
    return path


MALFORMED = {
    "branch": "node 'sig' (Sigmoid): its data input 'x' is not the previous layer's output 'r'",
    "dangling-output": "the graph output 'y' is not the last layer's output",
    "mask-used": "node 'drop' (Dropout): only its first output may be used",
    "custom-domain": "node 'relu' (Relu): operator 'Relu' is not supported",
    "twice-defined": "node 'relu' (Relu): its output: tensor name 'x' is empty or defined twice",
    "external": "initializer 'w': external data is not supported",
    "short-data": "initializer 'w': 7 bytes of data for shape",
    "bad-dims": "initializer 'w': 54 values for shape",
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_graph_is_a_clear_error(case, tmp_path, rng):
    path = malformed(tmp_path, rng, case)
    with pytest.raises(OnnxError, match=f"^{path}: ") as e:
        fonnx.load(path)
    assert MALFORMED[case] in str(e.value)


@pytest.mark.parametrize("data", [b"", b"\xff\xfe garbage", b"PK\x03\x04 a zip"], ids=str)
def test_a_file_that_is_not_onnx_is_a_clear_error(data, tmp_path):
    path = tmp_path / "x.onnx"
    path.write_bytes(data)
    with pytest.raises(OnnxError, match=f"^{path}: "):
        fonnx.load(path)
    with pytest.raises(OnnxError, match="cannot read the file"):
        fonnx.load(tmp_path / "missing.onnx")


# -- the command line ------------------------------------------------------------------
@pytest.fixture
def simple_checkpoint(tmp_path, rng):
    from fastnet import checkpoint
    from fastnet.config import TrainConfig

    model = models.build("simple", rng)
    meta = {"config": vars(TrainConfig(model="simple")), "epoch": 1}
    checkpoint.save(tmp_path / "best.npz", model.state_dict(), {}, meta)
    return tmp_path / "best.npz", model.eval()


def test_cli_export_writes_a_checked_model(simple_checkpoint, tmp_path, rng, capsys):
    ckpt, model = simple_checkpoint
    out = tmp_path / "simple.onnx"
    assert main(["export", str(ckpt), str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote {out}"
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    x = rng.random((3, 1, 28, 28), dtype=np.float32)
    assert_close(run_ort(out, x), model(x), "conv")


def test_cli_predict_runs_an_onnx_model(simple_checkpoint, tmp_path, capsys):
    from PIL import Image

    ckpt, _ = simple_checkpoint
    out = tmp_path / "simple.onnx"
    assert main(["export", str(ckpt), str(out)]) == 0
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    Image.fromarray(digit).save(tmp_path / "one.png")
    capsys.readouterr()
    assert main(["predict", str(ckpt), str(tmp_path / "one.png")]) == 0
    from_checkpoint = capsys.readouterr().out.splitlines()[-1]
    assert main(["predict", str(out), str(tmp_path / "one.png")]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == from_checkpoint


def test_cli_export_without_the_onnx_extra_is_a_clear_error(
    simple_checkpoint, tmp_path, monkeypatch, capsys
):
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)  # makes "import onnx" fail
    assert main(["export", str(simple_checkpoint[0]), str(tmp_path / "m.onnx")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "fastnet export: error: this command needs onnx: pip install 'fastnet[onnx]'"
    ]
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # its legacy exporter: no onnxscript
def test_a_torch_exported_model_loads(tmp_path, rng):
    """PyTorch's exporter (torch is not a test dependency: this runs where it is installed)."""
    torch = pytest.importorskip("torch")
    tnet = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Dropout(), torch.nn.Linear(196, 10),
    ).eval()  # fmt: skip
    tnet[1].running_mean.uniform_(-1, 1), tnet[1].running_var.uniform_(0.5, 2)
    x = torch.from_numpy(rng.random((2, 1, 14, 14), dtype=np.float32))
    path = tmp_path / "torch.onnx"
    torch.onnx.export(tnet, (x,), str(path), input_names=["x"], dynamic_axes={"x": {0: "N"}},
                      dynamo=False)  # fmt: skip
    model = fonnx.load(path)
    with torch.no_grad():
        expected = tnet(x).numpy()
    assert_close(model(x.numpy()), expected, "conv")


# -- every opset: files from older (and the newest) exporters ----------------------------
NEWEST = onnx.defs.onnx_opset_version()
# every attribute each operator has had in any opset, set to a value fastnet honours; a
# node gets those its version at the model's opset defines (onnx's own schemas say which)
EVERY_ATTRIBUTE = {
    "Conv": {"auto_pad": "NOTSET", "dilations": [1, 1], "group": 1, "kernel_shape": [3, 3],
             "pads": [1, 1, 1, 1], "strides": [1, 1]},
    "BatchNormalization": {"consumed_inputs": [0, 0, 0, 1, 1], "epsilon": 1e-3, "is_test": 1,
                           "momentum": 0.8, "spatial": 1, "training_mode": 0},
    "Relu": {"consumed_inputs": [0]},
    "MaxPool": {"auto_pad": "NOTSET", "ceil_mode": 0, "dilations": [1, 1], "kernel_shape": [2, 2],
                "pads": [0, 0, 0, 0], "storage_order": 0, "strides": [2, 2]},
    "AveragePool": {"auto_pad": "NOTSET", "ceil_mode": 0, "count_include_pad": 1,
                    "dilations": [1, 1], "kernel_shape": [2, 2], "pads": [0, 0, 0, 0],
                    "strides": [1, 1]},
    "Sigmoid": {"consumed_inputs": [0]},
    "Flatten": {"axis": 1},
    "Dropout": {"consumed_inputs": [0], "is_test": 1, "ratio": 0.3, "seed": 7},
    "Gemm": {"alpha": 0.5, "beta": 2.0, "broadcast": 1, "transA": 0, "transB": 1},
}  # fmt: skip
CHAIN = ("Conv", "BatchNormalization", "Relu", "MaxPool", "AveragePool", "Sigmoid", "Flatten",
         "Dropout", "Gemm")  # fmt: skip


def opset_nodes(opset: int) -> list:
    """The nodes of CHAIN, each with every attribute its version at ``opset`` has; from
    opset 12 Dropout's ratio is an input, from a Constant node."""
    inputs = {"Conv": ["w", "b"], "BatchNormalization": ["g", "s", "m", "v"], "Gemm": ["fw", "fc"]}
    nodes, data = [], "x"
    for op in CHAIN:
        has = set(onnx.defs.get_schema(op, opset).attributes)
        assert has <= set(EVERY_ATTRIBUTE[op]), f"{op}-{opset} has a new attribute"
        attrs = {k: v for k, v in EVERY_ATTRIBUTE[op].items() if k in has}
        out = "y" if op == CHAIN[-1] else op.lower()
        nodes.append(helper.make_node(op, [data, *inputs.get(op, [])], [out], op.lower(), **attrs))
        data = out
    if opset >= 12:
        ratio = numpy_helper.from_array(np.array(0.3, np.float32))
        nodes.insert(0, helper.make_node("Constant", [], ["ratio"], value=ratio))
        nodes[CHAIN.index("Dropout") + 1].input.append("ratio")
    return nodes


def numpy_chain(x: np.ndarray, p: dict) -> np.ndarray:
    """CHAIN on ``x`` (N, 3, 8, 8) in float64 NumPy, written from the ONNX operator
    descriptions (onnxruntime runs no model before opset 7)."""
    from numpy.lib.stride_tricks import sliding_window_view as windows

    x, p = x.astype(np.float64), {k: v.astype(np.float64) for k, v in p.items()}
    padded = np.pad(x, [(0, 0), (0, 0), (1, 1), (1, 1)])
    conv = np.einsum("nchwij,ocij->nohw", windows(padded, (3, 3), axis=(2, 3)), p["w"])
    c = {k: v[:, None, None] for k, v in p.items() if v.ndim == 1}
    norm = (conv + c["b"] - c["m"]) / np.sqrt(c["v"] + 1e-3) * c["g"] + c["s"]
    pooled = np.maximum(norm, 0).reshape(len(x), 4, 4, 2, 4, 2).max(axis=(3, 5))
    averaged = windows(pooled, (2, 2), axis=(2, 3)).mean(axis=(4, 5))
    flat = (1 / (1 + np.exp(-averaged))).reshape(len(x), -1)
    return (0.5 * flat @ p["fw"].T + 2.0 * p["fc"]).astype(np.float32)


@pytest.mark.parametrize("opset", sorted({1, 6, 7, 9, 11, 13, 17, NEWEST}))
def test_every_opset_loads_with_all_its_attributes_and_matches(opset, tmp_path, rng):
    """A conv -> batchnorm -> relu -> maxpool -> averagepool -> sigmoid -> flatten -> dropout
    -> gemm chain as an exporter of that opset writes it (is_test=1, spatial=1, broadcast=1,
    consumed_inputs before opset 6 ...): checked by onnx, run by onnxruntime (opset 7 on),
    and by NumPy."""
    inits = {"w": f32(rng, 4, 3, 3, 3), "b": f32(rng, 4), "g": rng.uniform(0.5, 1.5, 4),
             "s": f32(rng, 4), "m": f32(rng, 4), "v": rng.uniform(0.5, 2, 4),
             "fw": f32(rng, 5, 4 * 3 * 3), "fc": f32(rng, 5)}  # fmt: skip
    inits = {k: v.astype(np.float32) for k, v in inits.items()}
    path = write_graph(tmp_path / f"opset{opset}.onnx", opset_nodes(opset), inits,
                       ("N", 3, 8, 8), opset, out_shape=["N", 5])  # fmt: skip
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    model = fonnx.load(path)
    assert [type(m).__name__ for m in model] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d",
        "AvgPool2d", "Sigmoid", "Flatten", "Dropout", "Affine"]  # fmt: skip
    assert model[1].eps == 1e-3 and model[7].p == 0.3
    x = f32(rng, 3, 3, 8, 8)
    got = model(x)
    assert_close(got, numpy_chain(x, inits), "conv")
    if opset >= 7 and ort_reads(path):
        assert_close(got, run_ort(path, x), "conv")


def test_the_attribute_table_is_the_onnx_changelog():
    """fastnet.onnx.opsets.ATTRIBUTES says in which opsets each attribute of each operator
    fastnet loads exists: the schemas of the installed onnx, opset by opset, agree."""
    assert set(ATTRIBUTES) == set(fonnx.SUPPORTED)
    for op, table in ATTRIBUTES.items():
        for opset in range(1, NEWEST + 1):
            expected = set(onnx.defs.get_schema(op, opset).attributes)
            assert {a for a in table if defined(op, a, opset)} == expected, f"{op} at {opset}"


def single_node(op, inputs=("x",), **attrs):
    return [helper.make_node(op, list(inputs), ["y"], op.lower(), **attrs)]


MAXPOOL = {"kernel_shape": [3, 3], "strides": [1, 1]}
CONV_W = {"w": np.linspace(-1, 1, 2 * 3 * 3 * 3, dtype=np.float32).reshape(2, 3, 3, 3)}
# values fastnet honours beyond the defaults: (opset, nodes, initializers, input shape)
HONOURED = {
    "spatial0-on-features": (7, single_node("BatchNormalization", ["x", "g", "g", "z", "g"],
                             spatial=0), {"g": np.full(5, 2, np.float32),
                             "z": np.zeros(5, np.float32)}, ("N", 5)),
    "storage-order": (8, single_node("MaxPool", **MAXPOOL, storage_order=1), {}, None),
    "ceil-mode-stride-1": (10, single_node("MaxPool", **MAXPOOL, ceil_mode=1, pads=[1] * 4), {},
                           None),
    "avgpool-ceil-stride-1": (19, single_node("AveragePool", **MAXPOOL, ceil_mode=1,
                              count_include_pad=1, pads=[1] * 4), {}, None),
    "valid": (11, single_node("Conv", ["x", "w"], auto_pad="VALID", strides=[2, 2]), CONV_W,
              None),
    "same-upper": (11, single_node("Conv", ["x", "w"], auto_pad="SAME_UPPER"), CONV_W, None),
    "same-lower-pool": (11, single_node("MaxPool", **MAXPOOL, auto_pad="SAME_LOWER"), {}, None),
    "dilated-1x1": (13, single_node("Conv", ["x", "w"], dilations=[2, 2]),
                    {"w": CONV_W["w"][..., :1, :1]}, None),
    "constant-value-float": (13, [helper.make_node("Constant", [], ["r"], value_float=0.25),
                                  *single_node("Dropout", ["x", "r"])], {}, None),
}  # fmt: skip


@pytest.mark.parametrize("case", HONOURED)
def test_values_fastnet_can_honour_load_and_match_onnxruntime(case, tmp_path, rng):
    opset, nodes, inits, shape = HONOURED[case]
    path = write_graph(tmp_path / f"{case}.onnx", nodes, inits, shape or ("N", 3, 9, 8), opset)
    model = fonnx.load(path)
    x = f32(rng, 2, *(shape or ("N", 3, 9, 8))[1:])
    assert_close(model(x), run_ort(path, x), "conv")
    if case == "constant-value-float":
        assert model[0].p == 0.25


# Gemm-6's broadcast attribute (None: left out, so 0), C's shape, the input's batch size
GEMM6 = {"c": (1, (4,), "N"), "c-row": (1, (1, 4), "N"), "c-scalar": (1, (1,), "N"),
         "whole-output": (0, (2, 4), 2), "whole-output-unset": (None, (2, 4), 2)}  # fmt: skip


@pytest.mark.parametrize("case", GEMM6)
def test_gemm_before_opset_7_adds_c_as_its_broadcast_attribute_says(case, tmp_path, rng):
    """Gemm-6: with broadcast=1, C broadcasts to the (M, N) output; with broadcast=0 (the
    default) C is the whole output, which fastnet takes when the batch M is fixed and C's
    rows are equal. onnxruntime runs no Gemm before opset 7: NumPy gives the output."""
    broadcast, shape, batch = GEMM6[case]
    w = f32(rng, 3, 4)
    c = np.tile(f32(rng, 1, 4), (shape[0], 1)) if len(shape) == 2 else f32(rng, *shape)
    attrs = {} if broadcast is None else {"broadcast": broadcast}
    nodes = single_node("Gemm", ["x", "w", "c"], alpha=0.5, beta=2.0, **attrs)
    path = write_graph(tmp_path / "gemm6.onnx", nodes, {"w": w, "c": c}, (batch, 3), 6)
    x = f32(rng, 2, 3)
    expected = 0.5 * x.astype(np.float64) @ w + 2.0 * c
    assert_close(fonnx.load(path)(x), expected.astype(np.float32), "affine")


@pytest.mark.parametrize("versions", [[], [9, 13], [0]], ids=str)
def test_the_model_must_import_one_onnx_opset(versions, tmp_path):
    path = write_graph(tmp_path / "m.onnx", single_node("Relu"), {})
    proto = onnx.load(str(path))
    del proto.opset_import[:]
    proto.opset_import.extend(helper.make_opsetid("ai.onnx", v) for v in versions)
    proto.opset_import.append(helper.make_opsetid("com.example", 1))
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(OnnxError, match=f"^{path}: the model must import one version of the ONNX"):
        fonnx.load(path)


def test_a_string_constant_is_a_clear_error(tmp_path):
    nodes = [helper.make_node("Constant", [], ["r"], "ratio", value_string="0.5"),
             *single_node("Dropout", ["x", "r"])]  # fmt: skip
    path = write_graph(tmp_path / "m.onnx", nodes, {}, opset=13)
    with pytest.raises(OnnxError, match=r"node 'ratio' \(Constant\): a Constant's 'value_string'"):
        fonnx.load(path)

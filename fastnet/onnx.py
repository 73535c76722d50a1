"""ONNX export and import: fastnet models in the format the rest of the ecosystem deploys.

``export(model, path)`` writes a ``Sequential`` of fastnet layers as an ONNX model (opset
17, IR version 8, a dynamic batch dimension, checked by ``onnx.checker``); ``load(path)``
reads one back, or reads a model exported by another framework, as a ``Sequential`` that
runs and trains in fastnet. Both need the ``onnx`` package (``pip install 'fastnet[onnx]'``).

=========================  ===================================================================
fastnet                    ONNX
=========================  ===================================================================
Conv2d                     Conv (weight (OC, C, KH, KW), optional bias, symmetric pads)
BatchNorm2d, BatchNorm1d   BatchNormalization (running statistics; ONNX's momentum is
                           ``1 - momentum``: the weight of the running value)
ReLU, Sigmoid              Relu, Sigmoid
MaxPool2d                  MaxPool
AvgPool2d                  AveragePool with ``count_include_pad=1`` (fastnet counts padding)
Flatten                    Flatten with ``axis=1``
Affine                     Gemm with ``B`` = the (in, out) weight, ``transB=0`` (a file with
                           ``transB=1``, as PyTorch writes a Linear, loads transposed); a
                           Flatten first when the input is not 2-d
Dropout                    left out on export (the identity at inference); Dropout on load
=========================  ===================================================================

On load, Identity nodes are skipped and Constant nodes (and Identity nodes of constants)
give constants. Anything else (another operator, an attribute fastnet's layer lacks, such
as dilation, groups or ``auto_pad``, a graph that is not one chain of layers) is an
:class:`~fastnet.errors.OnnxError` naming the file, the node and its operator. A malformed
file is an ``OnnxError`` too: the loader parses the protobuf itself, never reads external
data files, and checks every tensor's size against its data before using it.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from fastnet.checkpoint import atomic_write
from fastnet.errors import MissingExtra, OnnxError
from fastnet.layers import (
    Affine,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    MaxPool2d,
    ReLU,
    Sigmoid,
)
from fastnet.module import Module, Sequential

OPSET = 17
IR_VERSION = 8
INPUT, OUTPUT = "input", "output"
# ONNX TensorProto data types the loader reads: FLOAT, DOUBLE, INT64, BOOL.
_DTYPES = {1: np.float32, 11: np.float64, 7: np.int64, 9: np.bool_}
_FIELDS = {1: "float_data", 11: "double_data", 7: "int64_data", 9: "int32_data"}
SUPPORTED = (
    "Conv",
    "BatchNormalization",
    "Relu",
    "Sigmoid",
    "MaxPool",
    "AveragePool",
    "Flatten",
    "Gemm",
    "Dropout",
    "Identity",
    "Constant",
)


def _require_onnx() -> Any:
    """The ``onnx`` package, or MissingExtra saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise MissingExtra("this command needs onnx: pip install 'fastnet[onnx]'") from None
    return onnx


# -- export ----------------------------------------------------------------------------
def export(
    model: Module, path: str | os.PathLike, input_shape: tuple[int, ...] = (1, 28, 28)
) -> None:
    """Write ``model``'s eval-mode computation as an ONNX file, atomically.

    Parameters
    ----------
    model : Module
        A ``Sequential`` of fastnet layers (or one layer), float32 or float64, on the host.
    path : path-like
        The ``.onnx`` file to write; its folder must exist.
    input_shape : tuple of int
        The shape of one input sample (the MNIST models': ``(1, 28, 28)``); the batch
        dimension is dynamic (``N``).

    Raises
    ------
    OnnxError
        A layer with no ONNX equivalent here, or mixed dtypes.
    ValueError
        The model does not run on inputs of ``input_shape``.
    MissingExtra
        The ``onnx`` package is not installed.
    """
    onnx = _require_onnx()
    from fastnet import inference

    dtypes = {p.data.dtype for p in model.parameters()} or {np.dtype(np.float32)}
    if len(dtypes) > 1:
        raise OnnxError(f"onnx.export: the model mixes dtypes {sorted(map(str, dtypes))}")
    dtype = dtypes.pop()
    # runs the model once: it must accept the input shape; gives the output shape
    out_shape = inference.compile(model)(np.zeros((1, *input_shape), dtype)).shape[1:]
    graph = _GraphWriter(onnx, dtype, 1 + len(input_shape))
    for i, layer in enumerate(inference.flat_layers(model)):
        graph.add(i, layer)
    proto = graph.model(input_shape, out_shape)
    onnx.checker.check_model(proto, full_check=True)
    atomic_write(path, lambda f: f.write(proto.SerializeToString()))


class _GraphWriter:
    """Collects the nodes and initializers of the graph being exported, layer by layer."""

    def __init__(self, onnx: Any, dtype: np.dtype, rank: int) -> None:
        self.onnx, self.dtype, self.rank = onnx, dtype, rank
        self.nodes: list = []
        self.initializers: list = []
        self.current = INPUT

    def add(self, i: int, layer: Module) -> None:
        """The nodes of layer ``i`` (none for Dropout)."""
        write = self._WRITERS.get(type(layer))
        if write is None:
            raise OnnxError(
                f"onnx.export: layer {i} ({type(layer).__name__}) has no ONNX equivalent here; "
                f"exportable: {', '.join(k.__name__ for k in self._WRITERS)}"
            )
        write(self, f"{i}.{type(layer).__name__}", layer)

    def _const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(self.onnx.numpy_helper.from_array(value.astype(self.dtype), name))
        return name

    def _node(self, op: str, name: str, inputs: list[str], **attributes: Any) -> None:
        out = f"{name}.out"
        self.nodes.append(
            self.onnx.helper.make_node(op, [self.current, *inputs], [out], name, **attributes)
        )
        self.current = out

    def _params(self, name: str, layer: Module) -> list[str]:
        """Initializers for the layer's weight and (if any) bias."""
        return [self._const(f"{name}.{n}", p.data) for n, p in layer.named_parameters()]

    def _conv(self, name: str, layer: Conv2d) -> None:
        self._node(
            "Conv",
            name,
            self._params(name, layer),
            kernel_shape=list(layer.weight.data.shape[2:]),
            strides=list(layer.stride),
            pads=list(layer.padding) * 2,
            dilations=[1, 1],
            group=1,
        )

    def _batchnorm(self, name: str, layer: BatchNorm1d | BatchNorm2d) -> None:
        stats = [
            self._const(f"{name}.{n}", getattr(layer, n)) for n in ("running_mean", "running_var")
        ]
        self._node(
            "BatchNormalization",
            name,
            self._params(name, layer) + stats,
            epsilon=layer.eps,
            momentum=1 - layer.momentum,
        )

    def _activation(self, name: str, layer: ReLU | Sigmoid) -> None:
        self._node(type(layer).__name__.capitalize(), name, [])

    def _pool(self, name: str, layer: MaxPool2d | AvgPool2d) -> None:
        extra = {"count_include_pad": 1} if type(layer) is AvgPool2d else {}
        op = "MaxPool" if type(layer) is MaxPool2d else "AveragePool"
        self._node(
            op,
            name,
            [],
            kernel_shape=list(layer.kernel_size),
            strides=list(layer.stride),
            pads=list(layer.padding) * 2,
            **extra,
        )

    def _flatten(self, name: str, layer: Module) -> None:
        self._node("Flatten", name, [], axis=1)
        self.rank = 2

    def _affine(self, name: str, layer: Affine) -> None:
        if self.rank != 2:  # Affine flattens its input; Gemm takes 2-d only
            self._flatten(f"{name}.flatten", layer)
        self._node("Gemm", name, self._params(name, layer), transB=0)

    def _dropout(self, name: str, layer: Dropout) -> None:
        pass  # the identity at inference

    _WRITERS = {
        Conv2d: _conv,
        BatchNorm1d: _batchnorm,
        BatchNorm2d: _batchnorm,
        ReLU: _activation,
        Sigmoid: _activation,
        MaxPool2d: _pool,
        AvgPool2d: _pool,
        Flatten: _flatten,
        Affine: _affine,
        Dropout: _dropout,
    }

    def model(self, input_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> Any:
        helper = self.onnx.helper
        if not self.nodes:
            self._node("Identity", "identity", [])
        self.nodes[-1].output[0] = OUTPUT
        elem = helper.np_dtype_to_tensor_dtype(np.dtype(self.dtype))
        graph = helper.make_graph(
            self.nodes,
            "fastnet",
            [helper.make_tensor_value_info(INPUT, elem, ["N", *input_shape])],
            [helper.make_tensor_value_info(OUTPUT, elem, ["N", *out_shape])],
            self.initializers,
        )
        from fastnet import __version__

        return helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            ir_version=IR_VERSION,
            producer_name="fastnet",
            producer_version=__version__,
        )


# -- load ------------------------------------------------------------------------------
def load(path: str | os.PathLike) -> Sequential:
    """Read an ONNX model (the operators in this module's table) as a fastnet model.

    Parameters
    ----------
    path : path-like
        An ``.onnx`` file: one graph input (N, ...), one output, a chain of nodes.

    Returns
    -------
    Sequential
        In eval mode (what an ONNX graph computes), in the dtype of the graph's input
        (float32 or float64); ``.train()`` it to fine-tune.

    Raises
    ------
    OnnxError
        The file is unreadable, not an ONNX model, or uses an operator, attribute or graph
        shape fastnet cannot represent (the message names the node and its operator).
    MissingExtra
        The ``onnx`` package is not installed.
    """
    onnx = _require_onnx()
    from google.protobuf.message import DecodeError

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise OnnxError(f"{path}: cannot read the file ({e.strerror or e})") from None
    try:
        proto = onnx.ModelProto.FromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise OnnxError(f"{path}: not an ONNX model ({e})") from None
    return _GraphReader(path, proto).model()


class _GraphReader:
    """Turns the nodes of a parsed ONNX graph into fastnet layers, one by one, following the
    data tensor (``current``) from the graph input to the graph output."""

    def __init__(self, path: Path, proto: Any) -> None:
        self.path, self.graph = path, proto.graph
        self.consts: dict[str, np.ndarray] = {}
        self.defined: set[str] = set()
        for t in self.graph.initializer:
            where = f"{path}: initializer {t.name!r}"
            self._define(t.name, where)
            self.consts[t.name] = _tensor_values(t, where)
        inputs = [v for v in self.graph.input if v.name not in self.consts]
        if len(inputs) != 1 or len(self.graph.output) != 1:
            raise OnnxError(
                f"{path}: not a model fastnet can load (it needs one graph input "
                f"and one output, got {len(inputs)} and {len(self.graph.output)})"
            )
        tensor = inputs[0].type.tensor_type
        if tensor.elem_type not in (1, 11) or not tensor.HasField("shape"):
            raise OnnxError(
                f"{path}: the graph input must be a float or double tensor of known rank"
            )
        self.dtype = np.dtype(_DTYPES[tensor.elem_type])
        self.rank = len(tensor.shape.dim)
        self._define(inputs[0].name, f"{path}: the graph input")
        self.current = inputs[0].name
        self.used = Counter(name for n in self.graph.node for name in n.input)
        self.used.update(v.name for v in self.graph.output)

    def _define(self, name: str, where: str) -> None:
        if not name or name in self.defined:
            raise OnnxError(f"{where}: tensor name {name!r} is empty or defined twice")
        self.defined.add(name)

    def model(self) -> Sequential:
        layers: list[Module] = []
        for i, node in enumerate(self.graph.node):
            where = (
                f"{self.path}: node {_text(node.name) or '#' + str(i)!r} ({_text(node.op_type)})"
            )
            try:
                layer = self._node(node, where)
            except ValueError as e:  # an OnnxError, or a layer refusing a value
                raise OnnxError(f"{where}: {e}") from None
            if layer is not None:
                layers.append(layer)
        if self.graph.output[0].name != self.current:
            raise OnnxError(
                f"{self.path}: the graph output {self.graph.output[0].name!r} is not "
                "the last layer's output (fastnet loads a chain of layers)"
            )
        return Sequential(*layers).eval()

    # -- one node ----------------------------------------------------------------------
    def _node(self, node: Any, where: str) -> Module | None:
        """The layer for ``node`` (None for a node that adds no layer)."""
        op = node.op_type
        if node.domain not in ("", "ai.onnx") or op not in SUPPORTED:
            raise OnnxError(
                f"operator {op!r} is not supported; fastnet loads {', '.join(SUPPORTED)}"
            )
        attrs = _attributes(node)
        if len(node.output) < 1 or not all(node.output):
            raise OnnxError("it needs named outputs")
        if op == "Constant" or (op == "Identity" and node.input and node.input[0] in self.consts):
            return self._constant(node, attrs)
        if not node.input or node.input[0] != self.current:
            first = node.input[0] if node.input else None
            raise OnnxError(
                f"its data input {first!r} is not the previous layer's output "
                f"{self.current!r} (fastnet loads a chain of layers)"
            )
        unused = {"Dropout": 1, "MaxPool": 1, "BatchNormalization": 4}.get(op, 0)
        if len(node.output) > 1 + unused or any(self.used[o] for o in node.output[1:]):
            raise OnnxError("only its first output may be used")
        layer = getattr(self, f"_{op.lower()}")(node, attrs)
        for o in node.output:
            self._define(o, "its output")
        self.current = node.output[0]
        return layer

    def _constant(self, node: Any, attrs: dict) -> None:
        if len(node.output) != 1:
            raise OnnxError("a constant node must have one output")
        if node.op_type == "Constant":
            if set(attrs) != {"value"} or not hasattr(attrs["value"], "data_type"):
                raise OnnxError("only a Constant with a 'value' tensor is supported")
            value = _tensor_values(attrs["value"], "its value")
        else:
            _only(attrs, set())
            if len(node.input) != 1:
                raise OnnxError("an Identity node must have one input")
            value = self.consts[node.input[0]]
        self._define(node.output[0], "its output")
        self.consts[node.output[0]] = value

    def _inputs(self, node: Any, count: int, required: int, weights: bool = True) -> list:
        """The constant inputs 1 .. ``count`` of ``node`` (None where an optional one is
        absent); ``weights``: finite arrays in the model's dtype."""
        names = list(node.input[1:])
        if len(names) > count or len([n for n in names[:required] if n]) < required:
            raise OnnxError(f"it must have {1 + required} to {1 + count} inputs")
        out = []
        for name in names + [""] * (count - len(names)):
            if not name:
                out.append(None)
                continue
            if name not in self.consts:
                raise OnnxError(f"input {name!r} must be a constant (an initializer)")
            value = self.consts[name]
            if weights and (value.dtype != self.dtype or not np.all(np.isfinite(value))):
                raise OnnxError(
                    f"input {name!r} must hold finite {self.dtype} values (the graph "
                    f"input's type), got {value.dtype}"
                )
            out.append(value)
        return out

    def _needs_rank(self, *ranks: int) -> None:
        if self.rank not in ranks:
            raise OnnxError(
                f"its input must have rank {' or '.join(map(str, ranks))}, got {self.rank}"
            )

    def _conv(self, node: Any, attrs: dict) -> Conv2d:
        _only(attrs, {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"})
        w, b = self._inputs(node, 2, 1)
        self._needs_rank(4)
        if w.ndim != 4 or (b is not None and b.shape != (w.shape[0],)):
            raise OnnxError(
                f"the weight must be (OC, C, KH, KW) and the bias (OC,), got "
                f"{w.shape} and {None if b is None else b.shape}"
            )
        _only_value(attrs, "group", 1, "fastnet's Conv2d has no groups")
        _window_checks(attrs, w.shape[2:])
        layer = Conv2d(
            w.shape[1],
            w.shape[0],
            w.shape[2:],
            _ints(attrs, "strides", [1, 1]),
            _pads(attrs),
            bias=b is not None,
            dtype=self.dtype,
            rng=np.random.default_rng(0),
        )
        return _filled(layer, w, b)

    def _gemm(self, node: Any, attrs: dict) -> Affine:
        _only(attrs, {"alpha", "beta", "transA", "transB"})
        w, c = self._inputs(node, 2, 1)
        self._needs_rank(2)
        _only_value(attrs, "transA", 0, "the data input must not be transposed")
        if w.ndim != 2:
            raise OnnxError(f"B must be 2-d, got shape {w.shape}")
        w = (w.T if _int(attrs, "transB", 0) else w) * _float(attrs, "alpha", 1.0)
        if c is not None:
            if c.ndim > 2 or c.size not in (1, w.shape[1]):
                raise OnnxError(
                    f"C must have shape (M,) or (1, M) with M = {w.shape[1]}, got {c.shape}"
                )
            c = np.broadcast_to(c.reshape(-1), w.shape[1:]) * _float(attrs, "beta", 1.0)
        layer = Affine(*w.shape, bias=c is not None, dtype=self.dtype, rng=np.random.default_rng(0))
        return _filled(layer, w, c)

    def _relu(self, node: Any, attrs: dict) -> ReLU:
        _only(attrs, set())
        self._inputs(node, 0, 0)
        return ReLU()

    def _sigmoid(self, node: Any, attrs: dict) -> Sigmoid:
        _only(attrs, set())
        self._inputs(node, 0, 0)
        return Sigmoid()

    def _maxpool(self, node: Any, attrs: dict) -> MaxPool2d:
        _only(
            attrs,
            {
                "auto_pad",
                "ceil_mode",
                "dilations",
                "kernel_shape",
                "pads",
                "storage_order",
                "strides",
            },
        )
        _only_value(attrs, "storage_order", 0, "fastnet has no column-major indices")
        return self._pool(node, attrs, MaxPool2d)

    def _averagepool(self, node: Any, attrs: dict) -> AvgPool2d:
        _only(
            attrs,
            {
                "auto_pad",
                "ceil_mode",
                "count_include_pad",
                "dilations",
                "kernel_shape",
                "pads",
                "strides",
            },
        )
        if any(_pads(attrs)) and not _int(attrs, "count_include_pad", 0):
            raise OnnxError(
                "count_include_pad=0 with padding is not supported (fastnet's "
                "AvgPool2d counts the padding in the divisor)"
            )
        return self._pool(node, attrs, AvgPool2d)

    def _pool(self, node: Any, attrs: dict, kind: type) -> MaxPool2d | AvgPool2d:
        self._inputs(node, 0, 0)
        self._needs_rank(4)
        if "kernel_shape" not in attrs:
            raise OnnxError("kernel_shape is missing")
        kernel = _ints(attrs, "kernel_shape", None)
        _window_checks(attrs, kernel)
        _only_value(attrs, "ceil_mode", 0, "fastnet pools in floor mode")
        pads = _pads(attrs)
        if any(2 * p > k for p, k in zip(pads, kernel, strict=True)):
            raise OnnxError(f"pads {pads} larger than half the kernel {kernel} are not supported")
        return kind(kernel, _ints(attrs, "strides", [1, 1]), pads)

    def _batchnormalization(self, node: Any, attrs: dict) -> BatchNorm1d | BatchNorm2d:
        _only(attrs, {"epsilon", "momentum", "training_mode", "spatial"})
        _only_value(attrs, "training_mode", 0, "fastnet loads inference graphs")
        _only_value(attrs, "spatial", 1, "fastnet normalizes per channel")
        gamma, beta, mean, var = self._inputs(node, 4, 4)
        self._needs_rank(2, 4)
        if any(v.shape != gamma.shape or v.ndim != 1 for v in (beta, mean, var)):
            raise OnnxError("scale, B, mean and var must all have shape (C,)")
        if np.any(var < 0):
            raise OnnxError("the variance must not be negative")
        kind = BatchNorm2d if self.rank == 4 else BatchNorm1d
        momentum = _float32(1 - _float(attrs, "momentum", 0.9))
        layer = kind(gamma.size, _float(attrs, "epsilon", 1e-5), momentum, dtype=self.dtype)
        layer.running_mean[...], layer.running_var[...] = mean, var
        return _filled(layer, gamma, beta)

    def _flatten(self, node: Any, attrs: dict) -> Flatten:
        _only(attrs, {"axis"})
        self._inputs(node, 0, 0)
        axis = _int(attrs, "axis", 1)
        if axis not in (1, 1 - self.rank):
            raise OnnxError(f"axis {axis} is not supported (fastnet's Flatten keeps axis 0 only)")
        self.rank = 2
        return Flatten()

    def _dropout(self, node: Any, attrs: dict) -> Dropout:
        _only(attrs, {"ratio", "seed", "is_test"})
        ratio, training = self._inputs(node, 2, 0, weights=False)
        if any(v is not None and v.size != 1 for v in (ratio, training)):
            raise OnnxError("ratio and training_mode must be scalars")
        if training is not None and bool(training.reshape(-1)[0]):
            raise OnnxError("training_mode=True is not supported (fastnet loads inference graphs)")
        return Dropout(
            _float(attrs, "ratio", 0.5) if ratio is None else float(ratio.reshape(-1)[0])
        )

    def _identity(self, node: Any, attrs: dict) -> None:
        _only(attrs, set())
        self._inputs(node, 0, 0)


def _filled(layer: Module, weight: np.ndarray, bias: np.ndarray | None) -> Module:
    """``layer`` with its weight and bias (if any) set to the given values."""
    layer.weight.data[...] = weight
    if bias is not None:
        layer.bias.data[...] = bias
    return layer


def _tensor_values(t: Any, where: str) -> np.ndarray:
    """The values of the TensorProto ``t``, checked against its shape and type first."""
    if t.data_location == 1 or len(t.external_data):
        raise OnnxError(
            f"{where}: external data is not supported (fastnet reads no file but the model)"
        )
    if t.HasField("segment") or t.data_type not in _DTYPES:
        raise OnnxError(f"{where}: tensors of data type {t.data_type} are not supported")
    dtype, dims = np.dtype(_DTYPES[t.data_type]), list(t.dims)
    if any(d < 0 for d in dims):
        raise OnnxError(f"{where}: negative dimension in {dims}")
    count = int(np.prod(dims, dtype=object))
    if t.HasField("raw_data"):
        if len(t.raw_data) != count * dtype.itemsize:
            raise OnnxError(f"{where}: {len(t.raw_data)} bytes of data for shape {dims}")
        return np.frombuffer(t.raw_data, dtype.newbyteorder("<")).astype(dtype).reshape(dims)
    values = getattr(t, _FIELDS[t.data_type])
    if len(values) != count:
        raise OnnxError(f"{where}: {len(values)} values for shape {dims}")
    return np.array(values, dtype=dtype).reshape(dims)


def _attributes(node: Any) -> dict:
    """``node``'s attributes as Python values. ONNX stores floats as float32: each comes
    back as the shortest decimal that rounds to it (``1e-05``, not ``9.99999974e-06``)."""
    out: dict[str, Any] = {}
    for a in node.attribute:
        if _text(a.name) in out or a.type not in (1, 2, 3, 4, 6, 7):
            raise OnnxError(f"attribute {_text(a.name)!r} has an unsupported type or appears twice")
        if a.type in (1, 6):  # FLOAT, FLOATS
            values = [_float32(v) for v in ([a.f] if a.type == 1 else a.floats)]
            out[_text(a.name)] = values[0] if a.type == 1 else values
        else:  # INT, STRING, TENSOR, INTS
            value = {2: a.i, 3: a.s, 4: a.t, 7: list(a.ints)}[a.type]
            out[_text(a.name)] = _text(value) if a.type == 3 else value
    return out


def _text(value: str | bytes) -> str:
    """A string from the file, printable on one line (protobuf gives bytes for a string
    field that is not UTF-8)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if value.isprintable() else repr(value)


def _float32(value: float) -> float:
    """The shortest decimal that rounds to the same float32 as ``value``."""
    return float(str(np.float32(value)))


def _only(attrs: dict, allowed: set[str]) -> None:
    extra = sorted(set(attrs) - allowed)
    if extra:
        raise OnnxError(f"attribute {extra[0]!r} is not supported")


def _int(attrs: dict, name: str, default: int) -> int:
    value = attrs.get(name, default)
    if not isinstance(value, int):
        raise OnnxError(f"attribute {name!r} must be an int")
    return value


def _float(attrs: dict, name: str, default: float) -> float:
    value = attrs.get(name, default)
    if not isinstance(value, float) or not np.isfinite(value):
        raise OnnxError(f"attribute {name!r} must be a finite float")
    return value


def _ints(attrs: dict, name: str, default: list[int] | None, count: int = 2) -> tuple[int, ...]:
    value = attrs.get(name, default)
    if (
        not isinstance(value, list)
        or len(value) != count
        or not all(isinstance(v, int) for v in value)
    ):
        raise OnnxError(f"attribute {name!r} must be {count} ints, got {value!r}")
    return tuple(value)


def _only_value(attrs: dict, name: str, only: int, why: str) -> None:
    if _int(attrs, name, only) != only:
        raise OnnxError(f"{name}={attrs[name]} is not supported ({why})")


def _pads(attrs: dict) -> tuple[int, int]:
    """ONNX's ``[top, left, bottom, right]`` as fastnet's symmetric ``(PH, PW)``."""
    top, left, bottom, right = _ints(attrs, "pads", [0, 0, 0, 0], 4)
    if (top, left) != (bottom, right) or min(top, left) < 0:
        raise OnnxError(
            f"pads {[top, left, bottom, right]} are not supported (fastnet pads symmetrically)"
        )
    return top, left


def _window_checks(attrs: dict, kernel: tuple[int, ...]) -> None:
    """The checks Conv and the pools share: explicit pads only, no dilation, a 2-d window."""
    if attrs.get("auto_pad", "NOTSET") != "NOTSET":
        raise OnnxError(f"auto_pad={attrs['auto_pad']!r} is not supported (explicit pads only)")
    if any(d != 1 for d in _ints(attrs, "dilations", [1, 1])):
        raise OnnxError(
            f"dilations {attrs['dilations']} are not supported (fastnet has no dilation)"
        )
    if len(kernel) != 2 or tuple(kernel) != _ints(attrs, "kernel_shape", list(kernel)):
        raise OnnxError(
            f"kernel_shape {attrs.get('kernel_shape')} does not match the 2-d "
            f"kernel {tuple(kernel)}"
        )

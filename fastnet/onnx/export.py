"""The ONNX exporter: a ``Sequential`` of fastnet layers, in eval mode, as an ONNX graph.

One writer per layer type (``_GraphWriter._WRITERS``) appends the layer's nodes and
initializers; the table of what each layer becomes is in :mod:`fastnet.onnx`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from fastnet import layers
from fastnet.checkpoint import atomic_write
from fastnet.errors import OnnxError
from fastnet.module import Module
from fastnet.onnx.extra import _require_onnx

OPSET = 17
IR_VERSION = 8
INPUT, OUTPUT = "input", "output"


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

    def _conv(self, name: str, layer: layers.Conv2d) -> None:
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

    def _batchnorm(self, name: str, layer: layers.BatchNorm1d | layers.BatchNorm2d) -> None:
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

    def _activation(self, name: str, layer: layers.ReLU | layers.Sigmoid) -> None:
        self._node(type(layer).__name__.capitalize(), name, [])

    def _pool(self, name: str, layer: layers.MaxPool2d | layers.AvgPool2d) -> None:
        extra = {"count_include_pad": 1} if type(layer) is layers.AvgPool2d else {}
        op = "MaxPool" if type(layer) is layers.MaxPool2d else "AveragePool"
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

    def _affine(self, name: str, layer: layers.Affine) -> None:
        if self.rank != 2:  # Affine flattens its input; Gemm takes 2-d only
            self._flatten(f"{name}.flatten", layer)
        self._node("Gemm", name, self._params(name, layer), transB=0)

    def _dropout(self, name: str, layer: layers.Dropout) -> None:
        pass  # the identity at inference

    _WRITERS: ClassVar[dict[type, Callable[..., None]]] = {
        layers.Conv2d: _conv,
        layers.BatchNorm1d: _batchnorm,
        layers.BatchNorm2d: _batchnorm,
        layers.ReLU: _activation,
        layers.Sigmoid: _activation,
        layers.MaxPool2d: _pool,
        layers.AvgPool2d: _pool,
        layers.Flatten: _flatten,
        layers.Affine: _affine,
        layers.Dropout: _dropout,
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

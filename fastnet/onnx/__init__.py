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

``load`` reads a model of any opset, 1 to the newest, with the attributes each opset gave
these operators (``is_test``, ``spatial``, ``broadcast``, ``consumed_inputs`` ... from older
exporters) as ONNX defines them; it refuses, in one line naming the attribute, only a value
fastnet cannot honour (training mode, dilation, groups ...).

The jobs, one file each: ``export.py`` (the graph writer), ``load.py`` (the graph reader and
its table of operator handlers), ``opsets.py`` (each operator's attributes, opset by opset,
and the rules that depend on the model's opset), ``attributes.py`` (node attributes and
tensor values, read and checked), ``extra.py`` (the lazy import of the optional ``onnx``
package).
"""

from fastnet.onnx.export import INPUT, IR_VERSION, OPSET, OUTPUT, export
from fastnet.onnx.load import SUPPORTED, load

__all__ = ["INPUT", "IR_VERSION", "OPSET", "OUTPUT", "SUPPORTED", "export", "load"]

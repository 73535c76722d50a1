"""The layers: one file per op family, mirroring ``kernels/``."""

from fastnet.layers.activation import ReLU, Sigmoid
from fastnet.layers.affine import Affine, Flatten
from fastnet.layers.conv import Conv2d
from fastnet.layers.dropout import Dropout
from fastnet.layers.loss import SoftmaxCrossEntropy
from fastnet.layers.norm import BatchNorm1d, BatchNorm2d
from fastnet.layers.pool import AvgPool2d, MaxPool2d

__all__ = [
    "Affine",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "Dropout",
    "Flatten",
    "MaxPool2d",
    "ReLU",
    "Sigmoid",
    "SoftmaxCrossEntropy",
]

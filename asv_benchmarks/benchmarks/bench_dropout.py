"""Dropout on the VGG hidden layer (100, 50) and a large activation (100, 16, 28, 28)."""

import numpy as np

from kernels import dropout
from kernels.dropout import reference as ref

from ._vgg import BATCH, rand

SHAPES = {"fc": (BATCH, 50), "conv": (BATCH, 16, 28, 28)}
IMPLS = {
    "numba": (dropout.dropout_forward, dropout.dropout_backward),
    "reference": (ref.dropout_forward_ref, ref.dropout_backward_ref),
}


class Dropout:
    params = (list(SHAPES), ["numba", "reference"])
    param_names = ["shape", "impl"]

    def setup(self, shape, impl):
        self.x = rand(SHAPES[shape])
        self.rng = np.random.default_rng(0)
        self.fwd, self.bwd = IMPLS[impl]
        _, self.mask = self.fwd(self.x, 0.5, self.rng)
        self.bwd(self.x, self.mask, 0.5)

    def time_forward(self, shape, impl):
        self.fwd(self.x, 0.5, self.rng)

    def time_backward(self, shape, impl):
        self.bwd(self.x, self.mask, 0.5)

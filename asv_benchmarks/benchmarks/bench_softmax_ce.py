"""Fused softmax cross-entropy on the VGG logits (100, 10); the NumPy reference as baseline."""

import numpy as np

from kernels import softmax_ce
from kernels.softmax_ce import reference as ref

from ._vgg import BATCH, rand

IMPLS = {
    "numba": (softmax_ce.softmax_ce_forward, softmax_ce.softmax_ce_backward),
    "reference": (ref.softmax_ce_forward_ref, ref.softmax_ce_backward_ref),
}


class SoftmaxCrossEntropy:
    params = ["numba", "reference"]
    param_names = ["impl"]

    def setup(self, impl):
        self.logits = rand((BATCH, 10))
        self.labels = np.random.default_rng(1).integers(0, 10, BATCH)
        self.fwd, self.bwd = IMPLS[impl]
        _, self.probs = self.fwd(self.logits, self.labels)
        self.bwd(self.probs, self.labels)

    def time_forward(self, impl):
        self.fwd(self.logits, self.labels)

    def time_backward(self, impl):
        self.bwd(self.probs, self.labels)

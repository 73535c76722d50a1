"""BatchNorm2d (training mode) at vgg-bn shapes; the NumPy reference as the baseline."""

import numpy as np

from kernels import batchnorm
from kernels.batchnorm import reference as ref

from ._vgg import BATCH, rand

SHAPES = {"bn1": (16, 28, 28), "bn6": (64, 8, 8)}
IMPLS = {
    "numba": (batchnorm.batchnorm_forward, batchnorm.batchnorm_backward),
    "reference": (ref.batchnorm_forward_ref, ref.batchnorm_backward_ref),
}


class BatchNorm2d:
    params = (list(SHAPES), ["numba", "reference"])
    param_names = ["layer", "impl"]

    def setup(self, layer, impl):
        c, h, w = SHAPES[layer]
        self.x = rand((BATCH, c, h, w))
        self.dy = rand(self.x.shape, 1)
        self.gamma, self.beta = np.ones(c, np.float32), np.zeros(c, np.float32)
        self.rm, self.rv = np.zeros(c, np.float32), np.ones(c, np.float32)
        self.fwd, self.bwd = IMPLS[impl]
        _, self.mean, self.invstd = self.forward()
        self.backward()

    def forward(self):
        return self.fwd(self.x, self.gamma, self.beta, self.rm, self.rv, training=True)

    def backward(self):
        return self.bwd(self.dy, self.x, self.gamma, self.mean, self.invstd, training=True)

    def time_forward(self, layer, impl):
        self.forward()

    def time_backward(self, layer, impl):
        self.backward()

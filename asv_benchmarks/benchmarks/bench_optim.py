"""Fused in-place optimizer updates on the VGG parameter sizes; the NumPy reference as baseline."""

import numpy as np

from kernels import optim
from kernels.optim import reference as ref

from ._vgg import rand

SIZES = {"conv6.weight": 64 * 64 * 9, "fc1.weight": 1024 * 50}
IMPLS = {
    "numba": (optim.adam_update, optim.sgd_update),
    "reference": (ref.adam_update_ref, ref.sgd_update_ref),
}


class OptimizerUpdate:
    params = (list(SIZES), ["numba", "reference"])
    param_names = ["param", "impl"]

    def setup(self, param, impl):
        n = SIZES[param]
        self.p, self.g = rand((n,)), rand((n,), 1)
        self.m, self.v = np.zeros(n, np.float32), np.zeros(n, np.float32)
        self.buf = np.zeros(n, np.float32)
        self.adam, self.sgd = IMPLS[impl]
        self.time_adam(param, impl)
        self.time_sgd_momentum(param, impl)

    def time_adam(self, param, impl):
        self.adam(
            self.p, self.g, self.m, self.v, None, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, step=1
        )

    def time_sgd_momentum(self, param, impl):
        self.sgd(self.p, self.g, self.buf, lr=0.01, momentum=0.9, first_step=False)

"""ReLU and sigmoid on the largest VGG activation (100, 16, 28, 28)."""

import kernels.activation as act
from kernels.activation import reference as ref

from ._vgg import BATCH, rand

IMPLS = {
    "numba": (act.relu_forward, act.relu_backward, act.sigmoid_forward, act.sigmoid_backward),
    "reference": (
        ref.relu_forward_ref,
        ref.relu_backward_ref,
        ref.sigmoid_forward_ref,
        ref.sigmoid_backward_ref,
    ),
}


class Activation:
    params = ["numba", "reference"]
    param_names = ["impl"]

    def setup(self, impl):
        self.x = rand((BATCH, 16, 28, 28))
        self.dy = rand(self.x.shape, 1)
        self.relu, self.relu_b, self.sig, self.sig_b = IMPLS[impl]
        self.y = self.relu(self.x)
        self.s = self.sig(self.x)
        self.relu_b(self.dy, self.y)
        self.sig_b(self.dy, self.s)

    def time_relu_forward(self, impl):
        self.relu(self.x)

    def time_relu_backward(self, impl):
        self.relu_b(self.dy, self.y)

    def time_sigmoid_forward(self, impl):
        self.sig(self.x)

    def time_sigmoid_backward(self, impl):
        self.sig_b(self.dy, self.s)

"""The inference plan's fused ReLU + 2x2 max pool at the VGG pool shapes, against the two
layers it replaces (ReLU, then max pooling with indices) and the NumPy reference."""

from kernels import fused
from kernels.activation import relu_forward
from kernels.fused import reference as ref
from kernels.pool import maxpool2d_forward

from ._vgg import BATCH, POOLS, rand

IMPLS = {
    "numba": fused.relu_maxpool2x2_forward,
    "layers": lambda x: maxpool2d_forward(relu_forward(x), 2),
    "reference": ref.relu_maxpool2x2_forward_ref,
}


class ReluMaxPool2x2:
    params = (list(POOLS), list(IMPLS))
    param_names = ["layer", "impl"]

    def setup(self, layer, impl):
        self.x = rand((BATCH, *POOLS[layer]))
        self.fn = IMPLS[impl]
        self.fn(self.x)

    def time_forward(self, layer, impl):
        self.fn(self.x)

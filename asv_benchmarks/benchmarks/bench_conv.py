"""conv2d forward and backward at the VGG shapes; the NumPy reference as the baseline."""

from kernels.activation import relu_backward, relu_forward
from kernels.conv import conv2d_backward, conv2d_forward
from kernels.conv.reference import conv2d_backward_ref, conv2d_forward_ref

from ._vgg import BATCH, CONVS, rand


def _inputs(bench, layer):
    """``x``, ``w``, ``b`` and ``pad`` of VGG's ``layer`` on ``bench``."""
    c, oc, h, w, bench.pad = CONVS[layer]
    bench.x = rand((BATCH, c, h, w))
    bench.w = rand((oc, c, 3, 3), 1) * 0.1
    bench.b = rand((oc,), 2)


class Conv2d:
    params = (list(CONVS), ["numba", "reference"])
    param_names = ["layer", "impl"]

    def setup(self, layer, impl):
        _inputs(self, layer)
        self.fwd, self.bwd = {
            "numba": (conv2d_forward, conv2d_backward),
            "reference": (conv2d_forward_ref, conv2d_backward_ref),
        }[impl]
        self.dy = rand(self.fwd(self.x, self.w, self.b, 1, self.pad).shape, 3)
        self.bwd(self.dy, self.x, self.w, 1, self.pad)  # compile

    def time_forward(self, layer, impl):
        self.fwd(self.x, self.w, self.b, 1, self.pad)

    def time_backward(self, layer, impl):
        self.bwd(self.dy, self.x, self.w, 1, self.pad)


class Conv2dReLU:
    """A convolution and the ReLU after it, as training runs them (``Sequential`` fuses the
    pair: ``relu=True`` forward, ``relu_out`` backward) or one kernel after the other."""

    params = (list(CONVS), ["fused", "apart"])
    param_names = ["layer", "impl"]

    def setup(self, layer, impl):
        _inputs(self, layer)
        self.y = conv2d_forward(self.x, self.w, self.b, 1, self.pad, relu=True)
        self.dy = rand(self.y.shape, 3)
        self.time_forward(layer, impl)  # compile
        self.time_backward(layer, impl)

    def time_forward(self, layer, impl):
        if impl == "fused":
            conv2d_forward(self.x, self.w, self.b, 1, self.pad, relu=True)
        else:
            relu_forward(conv2d_forward(self.x, self.w, self.b, 1, self.pad))

    def time_backward(self, layer, impl):
        if impl == "fused":
            conv2d_backward(self.dy, self.x, self.w, 1, self.pad, relu_out=self.y)
        else:
            conv2d_backward(relu_backward(self.dy, self.y), self.x, self.w, 1, self.pad)

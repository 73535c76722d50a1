"""Affine forward and backward at the VGG shapes; the NumPy reference as the baseline."""

from kernels.affine import affine_backward, affine_forward
from kernels.affine.reference import affine_backward_ref, affine_forward_ref

from ._vgg import AFFINES, BATCH, rand


class Affine:
    params = (list(AFFINES), ["numba", "reference"])
    param_names = ["layer", "impl"]

    def setup(self, layer, impl):
        d, m = AFFINES[layer]
        self.x, self.w, self.b = rand((BATCH, d)), rand((d, m), 1), rand((m,), 2)
        self.dy = rand((BATCH, m), 3)
        self.fwd, self.bwd = {
            "numba": (affine_forward, affine_backward),
            "reference": (affine_forward_ref, affine_backward_ref),
        }[impl]
        self.fwd(self.x, self.w, self.b)
        self.bwd(self.dy, self.x, self.w)

    def time_forward(self, layer, impl):
        self.fwd(self.x, self.w, self.b)

    def time_backward(self, layer, impl):
        self.bwd(self.dy, self.x, self.w)

"""2x2 max pooling (and average pooling) at the VGG shapes; the NumPy reference as baseline."""

from kernels import pool
from kernels.pool import reference as ref

from ._vgg import BATCH, POOLS, rand

IMPLS = {
    "numba": (pool.maxpool2d_forward, pool.maxpool2d_backward, pool.avgpool2d_forward),
    "reference": (ref.maxpool2d_forward_ref, ref.maxpool2d_backward_ref, ref.avgpool2d_forward_ref),
}


class Pool2d:
    params = (list(POOLS), ["numba", "reference"])
    param_names = ["layer", "impl"]

    def setup(self, layer, impl):
        c, h, w = POOLS[layer]
        self.x = rand((BATCH, c, h, w))
        self.fwd, self.bwd, self.avg = IMPLS[impl]
        y, self.indices = self.fwd(self.x, 2)
        self.dy = rand(y.shape, 1)
        self.bwd(self.dy, self.indices, self.x.shape)
        self.avg(self.x, 2)

    def time_maxpool_forward(self, layer, impl):
        self.fwd(self.x, 2)

    def time_maxpool_backward(self, layer, impl):
        self.bwd(self.dy, self.indices, self.x.shape)

    def time_avgpool_forward(self, layer, impl):
        self.avg(self.x, 2)

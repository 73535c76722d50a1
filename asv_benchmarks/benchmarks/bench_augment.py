"""Augmentation of a VGG training batch (100, 1, 28, 28): the warp kernel and whole specs."""

import numpy as np

from fastnet.data.augment import augment_batch
from kernels.augment import warp_forward
from kernels.augment.reference import warp_forward_ref

from ._vgg import BATCH, rand

SHAPE = (BATCH, 1, 28, 28)
SPECS = {"shift": "2", "affine": "shift=2,rotate=10,scale=0.1",
         "full": "shift=2,rotate=10,scale=0.1,elastic=34:4"}  # fmt: skip


class Warp:
    params = (["numba", "reference"],)
    param_names = ["impl"]

    def setup(self, impl):
        rng = np.random.default_rng(0)
        self.x = rand(SHAPE)
        self.theta = np.tile(np.eye(2, 3), (BATCH, 1, 1)) + 0.1 * rng.standard_normal((BATCH, 2, 3))
        self.field = rng.standard_normal((BATCH, 2, 28, 28))
        dt = self.x.dtype
        self.fn = {
            "numba": lambda: warp_forward(self.x, self.theta, self.field),
            "reference": lambda: warp_forward_ref(
                self.x, self.theta.astype(dt), self.field.astype(dt)
            ),
        }[impl]
        self.fn()

    def time_warp(self, impl):
        self.fn()


class AugmentBatch:
    params = (list(SPECS),)
    param_names = ["spec"]

    def setup(self, spec):
        self.x = rand(SHAPE)
        self.rng = np.random.default_rng(0)
        augment_batch(self.x, SPECS[spec], self.rng)

    def time_augment_batch(self, spec):
        augment_batch(self.x, SPECS[spec], self.rng)

"""Shapes of the book's VGG-style net (DeepConvNet) on MNIST at batch 100, float32."""

import numpy as np

BATCH = 100
# name: (C, OC, H, W, padding) of each 3x3 convolution
CONVS = {
    "conv1": (1, 16, 28, 28, 1),
    "conv2": (16, 16, 28, 28, 1),
    "conv3": (16, 32, 14, 14, 1),
    "conv4": (32, 32, 14, 14, 2),
    "conv5": (32, 64, 8, 8, 1),
    "conv6": (64, 64, 8, 8, 1),
}
# name: input (C, H, W) of each 2x2 max pool
POOLS = {"pool1": (16, 28, 28), "pool2": (32, 16, 16), "pool3": (64, 8, 8)}
# name: (in, out) of each Affine
AFFINES = {"fc1": (1024, 50), "fc2": (50, 10)}


def rand(shape, seed=0, dtype=np.float32):
    """A seeded standard-normal array."""
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)

"""The inference plan (``fastnet.inference``) on the VGG net at batch 1 and 100, against the
eager model (``model.eval()(x)``), and the cost of compiling a plan (packing the weights)."""

import numpy as np

from fastnet import inference, models

from ._vgg import BATCH, rand

BATCHES = {"batch1": 1, "batch100": BATCH}


class VGGInference:
    params = (list(BATCHES), ["plan", "eager"])
    param_names = ["batch", "impl"]
    timeout = 300

    def setup(self, batch, impl):
        net = models.build("vgg", np.random.default_rng(0)).eval()
        self.run = inference.compile(net) if impl == "plan" else net
        self.x = rand((BATCHES[batch], 1, 28, 28))
        self.run(self.x)

    def time_inference(self, batch, impl):
        self.run(self.x)

    def peakmem_inference(self, batch, impl):
        self.run(self.x)


class PlanCompile:
    def setup(self):
        self.net = models.build("vgg-bn", np.random.default_rng(0)).eval()

    def time_compile(self):
        inference.compile(self.net)

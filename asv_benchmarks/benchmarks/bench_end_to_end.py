"""The VGG net end to end: a training step of the book's loop (``fastnet.loop``: forward,
loss, backward, Adam) and inference."""

import numpy as np

from fastnet import SoftmaxCrossEntropy, models, optim
from fastnet.loop import train_one_epoch

from ._vgg import BATCH, rand


class VGG:
    timeout = 300

    def setup(self):
        self.net = models.build("vgg", np.random.default_rng(0))
        self.opt = optim.Adam(self.net.parameters())
        self.loss_fn = SoftmaxCrossEntropy()
        self.x = rand((BATCH, 1, 28, 28))
        self.x1 = self.x[:1].copy()
        self.t = np.random.default_rng(1).integers(0, 10, BATCH)
        self.time_train_step()
        self.time_inference_batch100()
        self.time_inference_batch1()

    def time_train_step(self):
        train_one_epoch(self.net, self.loss_fn, self.opt, [(self.x, self.t)])

    def time_inference_batch100(self):
        self.net.eval()(self.x)

    def time_inference_batch1(self):
        self.net.eval()(self.x1)

    def peakmem_train_step(self):
        self.time_train_step()

"""Compile time of the VGG training step's kernels, cold (empty cache) and from the cache."""

import os
import subprocess
import sys
import tempfile

STEP = (
    "import time, numpy as np; t0 = time.perf_counter(); "
    "from fastnet import SoftmaxCrossEntropy, models, optim; "
    "net = models.build('vgg', np.random.default_rng(0)); opt = optim.Adam(net.parameters()); "
    "loss = SoftmaxCrossEntropy(); x = np.zeros((4, 1, 28, 28), np.float32); "
    "loss(net(x), np.zeros(4, np.int64)); net.backward(loss.backward()); opt.step(); "
    "print(time.perf_counter() - t0)"
)


def _first_step_seconds(cache_dir: str) -> float:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", STEP], env=env, capture_output=True, text=True)
    out.check_returncode()
    return float(out.stdout.split()[-1])


class CompileTime:
    timeout = 600
    repeat = 1
    number = 1
    unit = "seconds"

    def setup(self):
        self.cache = tempfile.TemporaryDirectory()
        self.cold = _first_step_seconds(self.cache.name)

    def teardown(self):
        self.cache.cleanup()

    def track_first_step_cold_cache(self):
        return self.cold

    def track_first_step_warm_cache(self):
        return _first_step_seconds(self.cache.name)

"""The inference plan: a trained model compiled once into a short list of fused steps.

``plan = inference.compile(model)`` turns a ``Sequential`` of fastnet layers into a
:class:`Plan`; ``plan(x)`` gives ``model.eval()(x)`` up to float rounding:

- Dropout is removed; a BatchNorm directly after a convolution or an Affine is folded into
  its weights and bias (in float64, then rounded to the model's dtype);
- a convolution, its bias, a following ReLU and a following 2x2 max pool run as one step:
  one call of the convolution kernel (weights packed into its blocked layout once, at
  compile time, by ``kernels.conv.pack_conv2d``), which applies the ReLU, or the ReLU and
  the pooling, to each image while it is in cache (``kernels.conv.bind_conv2d_forward``,
  its checks made once per input shape);
- an Affine and a following ReLU run as one step;
- every buffer a step writes is allocated once per input shape and reused;
- a batch smaller than the thread count is split *within* each image, over runs of its
  output pixels, when a convolution has enough work per image to pay for a parallel
  region (about 2 us while Numba's threads spin: ``kernels._jit.WAIT_POLICY``);
- any other layer (a pool or activation not fused, a stand-alone BatchNorm, a module fastnet
  does not know) runs as itself, so the plan never refuses a model that runs.

Layout: the convolution kernels take and give NCHW (they pad their input internally), so
the activations stay NCHW from step to step and nothing is converted, at the edges or
between steps. The convolution step calls the public packed forward of ``kernels.conv``
(``pack_conv2d``, ``bind_conv2d_forward``); a kernel with another layout would change
that step only.

The plan is a snapshot: later changes to the model's weights do not reach it (compile
again). It computes eval-mode outputs whatever mode the model is in, and runs on the CPU.
Calls are serialized (the buffers are shared), so a plan can be used from several threads.

Modules: ``plan`` (``compile``, ``Plan``, the fusion of layers into steps) and ``steps``
(the step classes).
"""

from fastnet.inference.plan import Plan, compile, flat_layers
from fastnet.inference.steps import SHAPES_KEPT, SPLIT_MIN_FLOPS

__all__ = ["SHAPES_KEPT", "SPLIT_MIN_FLOPS", "Plan", "compile", "flat_layers"]

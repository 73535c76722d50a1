"""Optimizers with torch.optim's names, defaults, validation and formulas.

``SGD``, ``Adagrad``, ``RMSprop``, ``Adam`` and ``AdamW`` follow torch.optim (single
parameter group): fed the same gradients, a fastnet optimizer and the torch optimizer
follow the same parameter trajectory. Each ``step()`` is one fused, in-place
``kernels.optim`` call per parameter; parameters whose ``grad`` is None are skipped, and
each parameter keeps its own state (and step count), as in torch. Large parameters use the
multi-threaded kernel variant (the size rule is ``kernels._jit.Kernel``'s).

``optimizer.py`` holds the base class, how a hyper-parameter is declared, and the
``state_dict`` format; each other file holds one family of update rules.
"""

from fastnet.optim.adagrad import Adagrad
from fastnet.optim.adam import Adam, AdamW
from fastnet.optim.optimizer import Optimizer
from fastnet.optim.rmsprop import RMSprop
from fastnet.optim.sgd import SGD

__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop"]

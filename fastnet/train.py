"""The names of earlier releases, kept so that code written against them runs unchanged.

New code imports them from where they live: :class:`~fastnet.config.TrainConfig` from
:mod:`fastnet.config`, :func:`~fastnet.run.fit` from :mod:`fastnet.run`, and
:func:`~fastnet.loop.evaluate` from :mod:`fastnet.loop`.
"""

from fastnet.config import TrainConfig
from fastnet.loop import evaluate
from fastnet.metrics import confusion_matrix
from fastnet.run import config_from_checkpoint, fit, lr_at, make_optimizer

__all__ = [
    "TrainConfig",
    "config_from_checkpoint",
    "confusion_matrix",
    "evaluate",
    "fit",
    "lr_at",
    "make_optimizer",
]

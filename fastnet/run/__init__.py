"""A training run around the book's loop (:mod:`fastnet.loop`): ``fit(config, out)``.

Each piece is a file of its own, tested alone:

- :mod:`~fastnet.run.recipe`: what a configuration builds (model, optimizer, schedule, data);
- :mod:`~fastnet.run.folder`: the run folder (``config.json``, ``metrics.jsonl``), atomic
  writes, never clobbering a run;
- :mod:`~fastnet.run.state`: checkpoints and bit-exact resume;
- :mod:`~fastnet.run.divergence`: NaN and infinity stop the run, the last checkpoint kept;
- :mod:`~fastnet.run.progress`: the progress bar or lines;
- :mod:`~fastnet.run.signals`: Ctrl-C (and, under MPI, SIGTERM, SIGUSR1) stop at a step;
- :mod:`~fastnet.run.trainer`: the run's objects, each epoch, what follows each step;
- :mod:`~fastnet.run.main`: :func:`fit`, which composes them.

MPI enters as :class:`fastnet.distributed.DataParallel` (a gradient reduction after
backward, a shard of each batch) and as the collectives of :class:`fastnet.distributed.World`,
each a no-op in one process.
"""

from fastnet.run.main import fit
from fastnet.run.recipe import lr_at, make_model, make_optimizer
from fastnet.run.state import RunState, config_from_checkpoint

__all__ = [
    "RunState",
    "config_from_checkpoint",
    "fit",
    "lr_at",
    "make_model",
    "make_optimizer",
]

"""The ``fastnet`` command: train, evaluate, predict, export, plot, models, download, experiment.

``main(argv=None) -> int``. Bad input exits 2 with one line on stderr; an unexpected
internal error exits 1 with a short message (the traceback with ``--debug``).
Heavy modules are imported inside the commands so that ``fastnet --help`` is instant.

``parser`` holds the flags; ``train``, ``saved_model`` (evaluate, predict, export) and
``other`` (plot, models, download, experiment) the commands; ``common`` what they share.
Each command is a ``cmd_<name>(args) -> int``: it takes the parsed flags of ``fastnet
<name>``, returns the exit code 0 and raises on failure; :func:`main` maps its errors to
exit codes.
"""

from __future__ import annotations

import sys
import traceback

from fastnet.cli.common import COMPILE_NOTICE, UsageError
from fastnet.cli.other import cmd_download, cmd_experiment, cmd_models, cmd_plot
from fastnet.cli.parser import build_parser
from fastnet.cli.saved_model import cmd_evaluate, cmd_export, cmd_predict
from fastnet.cli.train import cmd_train
from kernels._isa import forced_isa

__all__ = ["COMMANDS", "COMPILE_NOTICE", "UsageError", "build_parser", "main"]

COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "export": cmd_export,
    "plot": cmd_plot,
    "models": cmd_models,
    "download": cmd_download,
    "experiment": cmd_experiment,
}


def main(argv: list[str] | None = None) -> int:
    """Run the ``fastnet`` command line.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code: 0 done, 1 an internal error, a diverged run or an OS error, 2 bad
        input (argparse's errors exit 2 themselves; a ``$FASTNET_ISA`` that names no ISA),
        130 interrupted.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        forced_isa()  # a bad $FASTNET_ISA is bad input: refused before any work
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("fastnet: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the one place that turns errors into exit codes
        return _exit_code(e, args.command, args.debug)


def _exit_code(e: Exception, command: str, debug: bool) -> int:
    """Report ``e`` (once per job under MPI) and return its exit code."""
    from fastnet.distributed import report
    from fastnet.errors import FastnetError, TrainingDiverged, TrainingInterrupted
    from kernels._isa import IsaError

    if isinstance(e, TrainingInterrupted):
        report(e, str(e), sys.stdout)
        return 130
    if isinstance(e, TrainingDiverged) or (isinstance(e, OSError) and not debug):
        report(e, f"fastnet {command}: error: {e}", sys.stderr)
        return 1
    if isinstance(e, (UsageError, FastnetError, IsaError)):
        report(e, f"fastnet {command}: error: {e}", sys.stderr)
        return 2
    if debug:
        traceback.print_exc()
    else:
        report(e, f"fastnet {command}: internal error: {type(e).__name__}: {e} "
               "(run with --debug for the traceback)", sys.stderr)  # fmt: skip
    return 1

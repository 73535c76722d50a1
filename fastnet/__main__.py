"""``python -m fastnet``: the command line (under MPI: ``python -m mpi4py -m fastnet``)."""

import sys

from fastnet.cli import main

sys.exit(main())

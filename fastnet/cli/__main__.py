"""``python -m fastnet.cli``: the same as ``python -m fastnet``."""

import sys

from fastnet.cli import main

sys.exit(main())

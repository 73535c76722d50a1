"""Start-up time: ``import fastnet`` and ``fastnet --help``, each in a fresh interpreter.

Each sample is one subprocess, since the first import of a process is what a user waits
for; the bare interpreter's start is the baseline. (A unit test checks that the import
compiles no kernel; how long it takes is measured here, not asserted in a test.)
"""

import subprocess
import sys

CODE = {
    "python": "pass",
    "import fastnet": "import fastnet",
    # What the console script `fastnet --help` runs.
    "fastnet --help": "import sys; from fastnet.cli import main; sys.exit(main(['--help']))",
}


def _run(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL)


class Startup:
    params = list(CODE)
    param_names = ["command"]
    number = 1
    repeat = (5, 20, 20.0)
    timeout = 120

    def setup(self, command):
        _run(CODE[command])  # bytecode written, files in the page cache

    def time_startup(self, command):
        _run(CODE[command])

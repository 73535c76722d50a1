"""The documentation runs as written: its ``fastnet`` commands and the README's Python loop.

Every ``fastnet ...`` command in a ``bash`` code block of README.md and docs/*.md (also
``mpirun ... -m fastnet ...``) is parsed by fastnet's own parser, so a documented command,
flag or choice that stops existing fails here. Then all of them run in one folder, in the
order the documents give them (README.md first), made cheap: ``train`` with ``--dry-run``,
or, where a later command reads its run folder, for real on 200 images for one epoch;
``evaluate``, ``predict``, ``export`` and ``plot`` for real on what an earlier command wrote
(a command that reads a file no documented command writes fails); ``download``,
``experiment`` and ``evaluate --ensemble`` with ``--help`` (network, minutes, several full
runs). Each must exit 0.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from fastnet.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = {"bash", "sh", "shell", "console"}
HELP_ONLY = {"download", "experiment"}  # the network; minutes of work
READS = {"evaluate": ("checkpoint",), "predict": ("checkpoint", "images"),
         "export": ("checkpoint",), "plot": ("run_dir",)}  # fmt: skip
SHORT = {"--limit": "200", "--epochs": "1"}
IMAGE = "digit.png"  # the image the documents predict on; the test writes it


def code_blocks(path: Path, languages: set[str]) -> list[tuple[int, str]]:
    """``(first line number, text)`` of each fenced code block of ``path`` in ``languages``."""
    blocks, language, start, lines = [], None, 0, []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("```") and language is None:
            language, start, lines = line[3:].strip(), number + 1, []
        elif line.startswith("```"):
            if language in languages:
                blocks.append((start, "\n".join(lines)))
            language = None
        elif language is not None:
            lines.append(line)
    return blocks


def _fastnet_argv(tokens: list[str]) -> list[str] | None:
    """The arguments after ``fastnet`` (or ``-m fastnet``) in a shell command, else None."""
    if tokens and (tokens[0] == "fastnet" or tokens[0].endswith("/fastnet")):
        return tokens[1:]
    for i, token in enumerate(tokens[:-1]):
        if token == "-m" and tokens[i + 1] == "fastnet":
            return tokens[i + 2 :]
    return None


def _expand_braces(argv: list[str]) -> list[str]:
    """Shell brace expansion, ``runs/a-{0,1}`` -> ``runs/a-0 runs/a-1``."""
    out = []
    for arg in argv:
        m = re.fullmatch(r"(.*)\{([^{}]*,[^{}]*)\}(.*)", arg)
        out += [m[1] + part + m[3] for part in m[2].split(",")] if m else [arg]
    return out


def commands(block: str) -> list[tuple[int, list[str]]]:
    """``(line offset, argv)`` of each ``fastnet`` command of a shell block; the variable of a
    ``for VAR in A B ...`` loop takes its first value."""
    found, values, lines = [], {}, block.splitlines()
    for offset, line in enumerate(lines):
        if offset and lines[offset - 1].endswith("\\"):
            continue  # joined to the line before
        for more in lines[offset + 1 :]:
            if not line.endswith("\\"):
                break
            line = line[:-1] + " " + more
        loop = re.match(r"\s*for (\w+) in ([^;]+); do", line)
        if loop:
            values[loop[1]] = loop[2].split()[0]
        for name, value in values.items():
            line = re.sub(rf"\$\{{?{name}\b\}}?", value, line)
        for part in re.split(r"&&|;|\|\|", line):
            argv = _fastnet_argv(shlex.split(part, comments=True))
            if argv is not None:
                found.append((offset, _expand_braces(argv)))
    return found


def documented() -> list[tuple[str, list[str]]]:
    """``(where, argv)`` of every documented command, README.md first, in order."""
    return [
        (f"{path.relative_to(ROOT)}:{start + offset}", argv)
        for path in DOCS
        for start, block in code_blocks(path, SHELL)
        for offset, argv in commands(block)
    ]


COMMANDS = documented()


def test_the_documents_quote_commands():
    quoted = {argv[0] for _, argv in COMMANDS if argv}
    assert {"train", "evaluate", "predict", "export", "plot", "models", "download",
            "experiment"} <= quoted, quoted  # fmt: skip


@pytest.mark.parametrize("where, argv", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_every_documented_command_parses(where, argv):
    try:
        build_parser().parse_args(argv)
    except SystemExit as e:
        if e.code == 0 and {"-h", "--help"} & set(argv):
            return
        pytest.fail(f"{where}: `fastnet {shlex.join(argv)}` does not parse (exit {e.code})")


def _replace(argv: list[str], flags: dict[str, str]) -> list[str]:
    """``argv`` with the values of ``flags`` set (replaced or appended)."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] in flags:
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out + [x for flag, value in flags.items() for x in (flag, value)]


def _inputs(args) -> list[Path]:
    """The files and run folders a command reads (a checkpoint's run folder for ``.npz``)."""
    paths = []
    for name in READS.get(args.command, ()):
        value = getattr(args, name)
        for item in value if isinstance(value, list) else [value] if value else []:
            path = Path(item)
            paths.append(path.parent if path.suffix == ".npz" else path)
    return paths


def cheap(argv: list[str], read_later: set[Path], written: set[Path], data: Path) -> list[str]:
    """``argv`` made cheap (see the module docstring); records what it will write."""
    if {"-h", "--help"} & set(argv):
        return argv
    args = build_parser().parse_args(argv)
    if "--data-dir" in argv:
        argv = _replace(argv, {"--data-dir": str(data)})
    if args.command in HELP_ONLY or getattr(args, "ensemble", None):
        return [args.command, "--help"]
    if args.command == "train":
        out = Path(args.out) if args.out else None
        if args.resume or out not in read_later or out in written:
            return [*argv, "--dry-run"]
        written.add(out)
        return _replace(argv, SHORT)
    missing = [p for p in _inputs(args) if p not in written]
    assert not missing, f"reads {missing}, which no earlier documented command writes"
    if args.command == "export":
        written.add(Path(args.output))
    return argv


def run(argv: list[str]) -> tuple[int, str]:
    """``fastnet.cli.main(argv)`` in this process: its exit code and output."""
    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        try:
            code = main(argv)
        except SystemExit as e:  # --help
            code = e.code
    return code, output.getvalue()


@pytest.fixture
def folder(tmp_path, monkeypatch, fashion_root) -> Path:
    """An empty working folder holding the image the documents predict on; Fashion-MNIST
    from the repository's excerpt (MNIST: the bundled copy)."""
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FASTNET_DATA_DIR", str(fashion_root))
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 12:16] = 255  # a "1"
    Image.fromarray(digit).save(tmp_path / IMAGE)
    return tmp_path


def test_every_documented_command_runs(folder, fashion_root):
    read_later = set()
    for _, argv in COMMANDS:
        if not {"-h", "--help"} & set(argv):
            read_later.update(_inputs(build_parser().parse_args(argv)))
    written, done, failures = {Path(IMAGE)}, set(), []
    for where, argv in COMMANDS:
        try:
            argv = cheap(argv, read_later, written, fashion_root)
        except AssertionError as e:
            failures.append(f"{where}: `fastnet {shlex.join(argv)}` {e}")
            continue
        if tuple(argv) in done:
            continue
        done.add(tuple(argv))
        code, output = run(argv)
        if code != 0:
            failures.append(f"{where}: `fastnet {shlex.join(argv)}` exit {code}:\n{output}")
    assert not failures, "\n".join(failures)


def test_the_readme_loop_runs_as_written(tmp_path, monkeypatch, capsys):
    (_, loop), *others = code_blocks(ROOT / "README.md", {"python"})
    assert not others, "the README holds one Python example: the loop"
    monkeypatch.chdir(tmp_path)
    exec(compile(loop, "README.md", "exec"), {"__name__": "__main__"})
    accuracies = re.findall(r"test accuracy (\d+\.\d+)%", capsys.readouterr().out)
    assert accuracies, "the README's loop prints no test accuracy"
    assert float(accuracies[-1]) > 90

"""The scripts' commands run in the test's own process: for tests of what a command does, not of its
process, so that each does not start an interpreter and import torch again."""

from __future__ import annotations

from typing import NamedTuple

# Each script's command: the package's command line, or the build machine's (benchmarks.cli).
SCRIPT_COMMANDS = {
    "serve.py": ("triton-rerank", "serve"),
    "export_model.py": ("triton-rerank", "export"),
    "evaluate.py": ("benchmarks", "evaluate"),
    "benchmark.py": ("benchmarks", "benchmark"),
    "load_test.py": ("benchmarks", "load-test"),
    "long_scifact.py": ("benchmarks", "long-corpus"),
}


class Ran(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


def ran(capsys, name: str, *args: str) -> Ran:
    """``scripts/NAME ARGS`` run as that script runs it, here: its exit status and what it printed."""
    from benchmarks.cli import main as build_machine_main
    from triton_rerank.cli import main

    program, command = SCRIPT_COMMANDS[name]
    if program == "triton-rerank":
        return captured(capsys, lambda: main([command, *args]))
    return captured(capsys, lambda: build_machine_main(command, list(args)))


def cli(capsys, *args: str) -> Ran:
    """``triton-rerank ARGS``, here."""
    from triton_rerank.cli import main

    return captured(capsys, lambda: main(list(args)))


def captured(capsys, run) -> Ran:
    """``run()``'s exit status (argparse's too) and what it printed, nothing before it."""
    capsys.readouterr()
    try:
        code = run()
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    return Ran(code, out, err)

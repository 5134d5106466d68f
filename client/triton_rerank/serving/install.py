"""Models moved into a repository so that Triton never serves a mix of two exports. An export writes
each model into a staging folder beside the repository, then swaps them in by rename, one by one. A
process killed between two swaps (a SIGKILL, a full disk) would leave, say, a new tokenizer in front
of the old cross-encoder. So a mark names the models being swapped for as long as that lasts, and the
embedded server refuses a repository that carries one (issue 39). Each model folder is always whole,
old or new: a rename never leaves half of one."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

MARK = ".export-in-progress.json"


class InterruptedExportError(RuntimeError):
    """The repository was left mid-swap by an export that did not finish."""


def install(staging: Path, repository: Path, names: tuple[str, ...]) -> None:
    """Move ``staging/<name>`` for each of ``names`` into ``repository``, replacing what is there."""
    mark = repository / MARK
    pending = set(names) | set(interrupted(repository))  # an earlier interrupted swap stays marked
    _write(mark, sorted(pending))
    for name in names:
        target, old = repository / name, repository / f".{name}.replaced"
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            os.replace(target, old)
        shutil.move(str(staging / name), str(target))  # a rename: the staging folder is beside it
    left = sorted(pending - set(names))
    if left:
        _write(mark, left)
    else:
        mark.unlink()
    for name in names:
        shutil.rmtree(repository / f".{name}.replaced", ignore_errors=True)


def interrupted(repository: Path) -> list[str]:
    """The models an unfinished export was swapping in ``repository`` (none: it is whole)."""
    mark = Path(repository) / MARK
    if not mark.exists():
        return []
    try:
        return list(json.loads(mark.read_text())["models"])
    except (OSError, ValueError, KeyError, TypeError):
        return ["(unreadable mark)"]


def check_whole(repository: Path) -> None:
    """Refuse a repository that an unfinished export left mid-swap, saying what to do."""
    if names := interrupted(repository):
        raise InterruptedExportError(
            f"an export into {repository} stopped while it replaced {', '.join(names)}: the repository may hold "
            "old and new models side by side, so it is not served; run that export again (or delete "
            f"{Path(repository) / MARK} if you know the models are whole)"
        )


def _write(mark: Path, names: list[str]) -> None:
    partial = mark.with_suffix(".partial")
    with partial.open("w") as out:
        json.dump({"models": names, "pid": os.getpid()}, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, mark)

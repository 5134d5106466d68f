"""Command-line flags derived from a settings dataclass, so that a field is declared once: its
name gives the flag (``max_queue_size`` -> ``--max-queue-size``), its type and default the parsing,
a ``Literal`` the choices, and ``metadata["help"]`` the help. Fields with ``metadata["cli"] =
False`` are filled in by the program, not by users."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Literal

from triton_rerank.errors import RerankInputError


def add_flags(parser: argparse.ArgumentParser, cls: type, title: str | None = None) -> None:
    """One flag per user-facing field of the dataclass ``cls``; the default is the field's."""
    group = parser.add_argument_group(title) if title else parser
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if not field.metadata.get("cli", True):
            continue
        flag = "--" + field.name.replace("_", "-")
        help_text = field.metadata.get("help", "")
        required = field.default is dataclasses.MISSING
        if required:
            group.add_argument(flag, type=_base_type(hints[field.name]), required=True, help=help_text)
            continue
        if "(default:" not in help_text:  # a help that says its default in words keeps them
            help_text += " (default: %(default)s)"
        kind = _base_type(hints[field.name])
        if kind is bool:
            help_text = help_text.replace(" (default: %(default)s)", "")  # the flag pair shows it
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default, help=help_text)
        elif typing.get_origin(kind) is Literal:
            choices = typing.get_args(kind)
            group.add_argument(flag, choices=choices, default=field.default, help=help_text)
        else:
            group.add_argument(flag, type=kind, default=field.default, help=help_text)


def from_flags(cls: type, args: argparse.Namespace):
    """An instance of ``cls`` from the parsed flags; the other fields keep their defaults. A value
    the settings refuse (their ``ValueError``) is the user's input error, said as the settings say it."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if f.metadata.get("cli", True)}
    try:
        return cls(**values)
    except RerankInputError:
        raise
    except ValueError as err:
        raise RerankInputError(str(err)) from err


def _base_type(hint: Any) -> Any:
    """``int | None`` -> ``int``; anything else as it is."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        (kind,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return kind
    return hint

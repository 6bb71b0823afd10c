"""Command-line options from the requests' declarations (:mod:`engine.params`), and the values they give back.

Every declared parameter of a subcommand's requests becomes one option with its
help, range and default shown; a parameter several requests share by name (the
seed of a chained job) is one option. Options read back as the values
:func:`engine.params.build` takes, and :meth:`Options.naming` words refusals
with the option the user typed.
"""

from __future__ import annotations

import argparse
import sys
import typing
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import params
from .params import Leaf


@dataclass
class Options:
    """The options one parser got from its requests: each option's leaf, by the option's destination."""

    by_dest: dict[str, Leaf] = field(default_factory=dict)
    flags: dict[str, str] = field(default_factory=dict)  # a parameter's name → the option that sets it

    def values(self, args: argparse.Namespace) -> dict[str, Any]:
        """The parsed options as parameter values by name (what :func:`engine.params.build` takes)."""
        values: dict[str, Any] = {}
        for dest, leaf in self.by_dest.items():
            raw = getattr(args, dest, None)
            p = leaf.param
            if p.cli_parse is not None:
                if raw is not None:
                    values.update(p.cli_parse(raw))
            elif p.cli_fields:
                if raw is not None:
                    values.update(zip(p.cli_fields, raw))
            elif p.choices is not None and isinstance(raw, str):
                values[leaf.name] = p.choices.from_cli(raw)
            elif raw is not None or leaf.optional:
                values[leaf.name] = raw
            if p.cli_sets and raw not in (None, ""):
                values.update(p.cli_sets)
        return values

    def missing(self, args: argparse.Namespace) -> list[str]:
        """The required options not given (checked here, not by argparse: a Ray shard's ``--request`` gives them all)."""
        return [
            self.flags[leaf.name]
            for dest, leaf in self.by_dest.items()
            if leaf.param.cli_required and getattr(args, dest) in (None, "", [])
        ]

    def naming(self, leaf: Leaf) -> str:
        """How a refusal names a parameter: its option, else its label."""
        return self.flags.get(leaf.name, leaf.param.label)


def flag(leaf: Leaf) -> str | None:
    p = leaf.param
    return None if p.cli is None else p.cli or f"--{leaf.name.replace('_', '-')}"


def add_options(parser: Any, requests: Sequence[type], hide: Collection[str] = (), defaults: Mapping[str, Any] | None = None) -> Options:
    """One option per declared parameter of ``requests`` (shared names once), except ``hide``; ``defaults`` override."""
    options, seen = Options(), set(hide)
    seen |= {name for r in requests for leaf in params.leaves(r) for name in leaf.param.cli_fields[1:]}  # set by another's option
    for leaf in (leaf for request in requests for leaf in params.leaves(request)):
        if leaf.name not in seen and flag(leaf) is not None:
            seen.add(leaf.name)
            _add(parser, leaf, (defaults or {}).get(leaf.name, leaf.default), options)
    return options


def _add(parser: Any, leaf: Leaf, default: Any, options: Options) -> None:
    p, name, kind = leaf.param, flag(leaf), leaf.kind
    assert name is not None
    how: dict[str, Any] = {}
    shown = default
    if p.cli_parse is not None:
        how = {"default": None}
    elif p.cli_fields:  # one value per field
        how = {"nargs": len(p.cli_fields), "type": kind, "metavar": tuple(f.upper()[:1] for f in p.cli_fields), "default": None}
    elif kind is bool:
        how = {"action": argparse.BooleanOptionalAction, "default": default}
        shown = "auto" if default is None else "on" if default else "off"
    elif p.choices is not None:
        shown = p.choices[default].cli if default in p.choices else default
        how = {"choices": p.choices.cli_names, "default": shown}
    elif typing.get_origin(kind) is list and p.cli_nargs:  # numbers in groups: one group, or the option repeated for several
        inner = typing.get_args(kind)[0]
        repeated = typing.get_origin(inner) is list
        how = {"nargs": p.cli_nargs, "type": float, "default": None, "action": "append" if repeated else "store"}
    elif typing.get_origin(kind) is list:
        how = {"nargs": "+", "default": default or None}
    elif p.values:
        how = {"type": kind, "choices": list(p.values), "default": default}
    else:
        how = {"type": kind, "default": default}
    if p.cli_required:
        how.update(default=None)
    if "choices" not in how and how.get("action") not in (argparse.BooleanOptionalAction, "append"):
        how.setdefault("metavar", name.lstrip("-").upper().replace("-", "_"))
    for old in p.cli_also:  # an older spelling of a value option
        parser.add_argument(old, dest=leaf.name, action=_deprecated(name), help=argparse.SUPPRESS, metavar=how.get("metavar"))
    parser.add_argument(name, dest=leaf.name, help=_help(leaf, shown, p.cli_required), **how)
    if p.cli_switch is not None:
        switch, value = p.cli_switch
        const = p.choices[value].cli if p.choices is not None else value
        parser.add_argument(switch, dest=leaf.name, action="store_const", const=const, help=f"the same as {name} {const}")
    options.by_dest[leaf.name] = leaf
    for covered in (*(p.cli_fields or (leaf.name,)), *(name_ for name_, _ in p.cli_sets)):
        options.flags[covered] = name


def _deprecated(new: str) -> type[argparse.Action]:
    class Deprecated(argparse.Action):
        def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
            print(f"batch.py: {option_string} is deprecated; use {new}", file=sys.stderr)
            setattr(namespace, self.dest, values)

    return Deprecated


def _help(leaf: Leaf, default: Any, required: bool) -> str:
    p, allowed = leaf.param, leaf.param.range_text()
    unit = {params.PIXELS: " px", params.DEGREES: "°", params.SECONDS: " s"}.get(p.unit, "")
    shown = not required and p.cli_parse is None and default not in (None, "", [], ())
    return f"{p.help}{f' [{allowed}{unit}]' if allowed else ''}{f' (default: {default})' if shown else ''}".replace("%", "%%")


def one_line_errors(parser: argparse.ArgumentParser) -> None:
    """Usage errors as one line (``error: …``, exit status 2) on every subparser, not argparse's usage block."""

    def error(message: str) -> typing.NoReturn:
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)

    parser.error = error  # type: ignore[method-assign]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                one_line_errors(sub)

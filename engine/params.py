"""Every job's parameters, declared once on its request dataclass, and the one check every request passes before any work.

A request field made with :func:`param` carries a :class:`Param` in its
metadata: its label, one-line help, unit, default, the range outside which it
is refused, the slider's range, the range outside which it runs with a
warning, its choice list, its command-line spelling, and whether the operator
reads it from Blender rather than the engine. The operators' properties, the
panel's rows, ``batch.py``'s options and the request built from either are
derived from it (``operators/machinery/declared.py``, :mod:`engine.cli`), so a
parameter is written here and nowhere else. Fields without a ``Param`` are
filled by the code (rendered files, pixels, the model access from the
preferences), never by the user.

:func:`validate` checks a request against its declaration — types, finite
numbers, ranges, multiples, choices, the job's own cross-field rules
(``check()`` on the request), the models it will load and the paths it reads
and writes — and refuses with one line naming the option, the value and what
is allowed. Nothing is clamped. The panel, the console, ``batch.py``, the
worker and every Ray task run it before the job does anything.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .choices import SCHEDULERS, Choices
from .errors import BadInput

# What a path field holds; outputs are checked writable, inputs present, before any work.
INPUT_FILE, INPUT_FOLDER, OUTPUT_FILE, OUTPUT_FOLDER = "input file", "input folder", "output file", "output folder"
FOLDER = "folder"  # a folder that may not exist yet and is not written here (a cache): shown as one, not checked
# Units, for the help text and Blender's subtypes.
PIXELS, DEGREES, SECONDS, LENGTH, FACTOR = "px", "°", "s", "length", "factor"

#: Seeds: Blender's integer properties are signed 32-bit, so one range serves the panel, the console and the command line.
SEED_MAX = 2**31 - 1
#: Denoising steps: every published model here was trained on a 1000-step schedule, so no sampler can take more.
STEPS_MAX = 1000


@dataclass(frozen=True)
class Param:
    """How one request field is shown, spelt, limited and checked."""

    label: str
    help: str
    unit: str = ""
    min: float | None = None  # refused below
    max: float | None = None  # refused above
    open_min: bool = False  # min itself refused too
    open_max: bool = False
    also: tuple[Any, ...] = ()  # accepted outside the range (0: automatic)
    values: tuple[Any, ...] = ()  # the only values accepted (an upscale of 1, 2 or 4)
    multiple: int = 1  # integers: refused unless a multiple of this
    soft: tuple[float, float] | None = None  # the slider's range (default: usual, else the hard range)
    usual: tuple[float, float] | None = None  # outside it the job runs, with a warning naming why
    why: str = ""  # why the hard or the usual range is what it is
    choices: Choices[Any] | None = None
    path: str = ""  # INPUT_FILE, INPUT_FOLDER, OUTPUT_FILE or OUTPUT_FOLDER
    model: bool = False  # a model: a folder or a Hugging Face repo id
    finds: tuple[str, ...] = ()  # a model: the kinds ``list_models`` finds that it takes (the panel suggests those)
    cli: str | None = ""  # "": --the-field-name; None: not on the command line
    cli_also: tuple[str, ...] = ()  # older spellings that still work, with a deprecation line
    cli_parse: Callable[[str], dict[str, Any]] | None = None  # the option's text → field values (one option, several fields)
    cli_fields: tuple[str, ...] = ()  # one option taking a value for each of these fields (--size W H); with cli_parse: those it sets
    cli_switch: tuple[str, Any] | None = None  # an option without a value that sets this value (--flat)
    cli_sets: tuple[tuple[str, Any], ...] = ()  # other fields the option sets when given (--image: the source is a file)
    cli_nargs: int = 0  # numbers taken together (--orbit AZ EL DIST); a list of such groups repeats the option
    cli_required: bool = False
    blender: bool = False  # read by the operator from Blender (objects, cameras, images); the engine ignores it
    prop: str = ""  # the operator property's name, where it differs from the field's
    ui: bool = True  # a row in the panel

    def range_text(self) -> str:
        """The allowed values in words: "1–1000", "≥ 0", "0, or 64–8192 in steps of 8"."""
        low, high = self.min, self.max
        above = f"{'>' if self.open_min else '≥'} {_num(low)}" if low is not None else ""
        below = f"{'<' if self.open_max else '≤'} {_num(high)}" if high is not None else ""
        closed = low is not None and high is not None and not (self.open_min or self.open_max)
        text = f"{_num(low)}–{_num(high)}" if closed else " and ".join(t for t in (above, below) if t)
        if self.values:
            return ", ".join(_num(v) for v in self.values[:-1]) + f" or {_num(self.values[-1])}"
        if self.multiple == 2:
            text = f"even, {text}" if text else "even"
        elif self.multiple > 1:
            text = f"{text}, a multiple of {self.multiple}" if text else f"a multiple of {self.multiple}"
        if self.also and text:
            text = f"{', '.join(_num(a) for a in self.also)}, or {text}"
        return text


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def param(default: Any, label: str, help: str, **how: Any) -> Any:
    """A declared request field: its default, label and help, and how it is limited and spelt (see :class:`Param`)."""
    declared = Param(label, help, **how)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"param": declared})
    return field(default=default, metadata={"param": declared})


def same_as(cls: type, name: str, default: Any = dataclasses.MISSING) -> Any:
    """A field declared as ``cls``'s field ``name`` is: the same label, help, limits and spelling, and the same default
    unless ``default`` is given."""
    declared = cls.__dataclass_fields__[name]  # type: ignore[attr-defined]
    return field(default=declared.default if default is dataclasses.MISSING else default, metadata=declared.metadata)


def nested(cls: type) -> Any:
    """A field holding another declared dataclass (the views to render, the model access): its fields join this request's."""
    return field(default_factory=cls, metadata={"nested": True})


@dataclass(frozen=True)
class Leaf:
    """One declared parameter of a request: where it sits (``path``: the fields leading to it) and how it is declared."""

    path: tuple[str, ...]
    param: Param
    type: Any
    default: Any

    @property
    def name(self) -> str:
        return self.path[-1]

    @property
    def prop(self) -> str:
        return self.param.prop or self.name

    @property
    def kind(self) -> Any:
        """The value type without ``| None``: bool, int, float, str, a tuple or a list."""
        args = [a for a in typing.get_args(self.type) if a is not type(None)]
        return args[0] if typing.get_origin(self.type) in (typing.Union, _UnionType) and len(args) == 1 else self.type

    @property
    def optional(self) -> bool:
        return type(None) in typing.get_args(self.type)


_UnionType = type(int | None)


def leaves(cls: type, skip: Callable[[type], bool] = lambda cls: False) -> list[Leaf]:
    """The declared parameters of a request class, nested ones included (a name shared with the outer request is one parameter).

    ``skip`` leaves out nested classes the caller fills otherwise (the operators: the model access, from the preferences).
    """
    found: dict[str, Leaf] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("nested"):
            if skip(hints[f.name]):
                continue
            for leaf in leaves(hints[f.name], skip):
                nested_leaf = dataclasses.replace(leaf, path=(f.name, *leaf.path))
                found.setdefault(leaf.name, nested_leaf)
        elif "param" in f.metadata:
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            found[f.name] = Leaf((f.name,), f.metadata["param"], hints[f.name], default)
    return list(found.values())


def defaults(cls: type) -> dict[str, Any]:
    """Each declared parameter's default, by name."""
    return {leaf.name: leaf.default for leaf in leaves(cls)}


def build(cls: type, values: Mapping[str, Any], base: Any = None) -> Any:
    """A request of ``cls`` from declared parameters' values by name (an operator's properties, parsed options, a panel).

    Parameters missing from ``values`` keep ``base``'s value, else their default; undeclared fields keep ``base``'s or
    their defaults. Nested declared dataclasses are filled from the same names. Without ``base``, a request class may
    say what stands in for the parameters not given, by a classmethod ``unset_from(values)`` (a resumed training: its
    checkpoint's settings, so ``--resume`` needs only what changes).
    """
    if base is None and hasattr(cls, "unset_from"):
        base = cls.unset_from(values)
    changes: dict[str, Any] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("nested"):
            inner = getattr(base, f.name) if base is not None else None
            changes[f.name] = build(hints[f.name], values, inner)
        elif f.name in values:  # a declared parameter, or a field an option's parser fills (the files of --out FILE)
            changes[f.name] = _as_field(values[f.name], hints[f.name])
    if base is not None:
        return dataclasses.replace(base, **changes)
    return cls(**changes)


def _as_field(value: Any, hint: Any) -> Any:
    """A value as its field stores it: Blender's vectors and argparse's lists as tuples where the field is a tuple."""
    origin = typing.get_origin(hint)
    if (origin is tuple or hint is tuple) and value is not None and not isinstance(value, tuple):
        return tuple(value)
    if origin is list and isinstance(value, tuple):
        return list(value)
    return value


class Refused(BadInput):
    """A field's value is refused; :func:`validate` words it for whoever asked (an option, a label)."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(why)
        self.field, self.why = field, why


def refuse(field: str, why: str) -> typing.NoReturn:
    """Refuse the request because of ``field`` (a job's cross-field rule); ``{name}`` in ``why`` names another field as the caller does."""
    raise Refused(field, why)


_MENTION = re.compile(r"\{([a-z_0-9]+)\}")  # another field, named in a refusal: "({overwrite} replaces them)"


@dataclass(frozen=True)
class Note:
    """A legal but unusual value: the job runs, and says this."""

    field: str
    text: str


Naming = Callable[[Leaf], str]
#: How a job checks a model folder is of the kind it needs: (folder, the name asked for, pickles allowed) → raises BadInput.
Inspect = Callable[[Path, str, bool], Any]


def label_name(leaf: Leaf) -> str:
    return leaf.param.label


def validate(request: Any, name: Naming = label_name, models: bool = True, paths: bool = True, rules: bool = True) -> list[str]:
    """Check ``request`` against its declaration and its job's rules; return the warnings, or raise one readable line.

    ``name`` words a field for the caller (the command line's option, the panel's label). ``rules``: the job's
    cross-field rules (``check()``); ``models``: every model the job will load is there and of the right kind;
    ``paths``: inputs exist and outputs can be written. Without all three: each value alone.
    """
    by_name = {leaf.name: leaf for leaf in leaves(type(request))}
    values = {leaf.name: _value(request, leaf) for leaf in by_name.values()}

    def worded(field: str, why: str) -> str:
        why = _MENTION.sub(lambda m: name(by_name[m[1]]) if m[1] in by_name else m[0], why)
        leaf = by_name.get(field)
        if leaf is None:
            return why
        return f"{name(leaf)} {_shown(values[field])}: {why}"

    notes: list[Note] = []
    try:
        for leaf in by_name.values():
            notes += _check_value(leaf, values[leaf.name])
        if paths:  # first: a rule may read an input or plan the outputs
            for leaf in by_name.values():
                _check_path(leaf, values[leaf.name])
        for part in _declared_parts(request) if rules else ():
            notes += list(getattr(part, "check", lambda: [])() or [])
        if models:
            access = getattr(request, "access", None)
            for part in _declared_parts(request) if access is not None else ():
                _check_models(part, access)
    except Refused as exc:
        raise BadInput(worded(exc.field, exc.why)) from None
    return [worded(n.field, n.text) for n in notes]


def _declared_parts(request: Any) -> Iterator[Any]:
    """The request and the nested declared dataclasses in it."""
    yield request
    for f in dataclasses.fields(request):
        if f.metadata.get("nested"):
            yield from _declared_parts(getattr(request, f.name))


def _value(request: Any, leaf: Leaf) -> Any:
    value = request
    for part in leaf.path:
        value = getattr(value, part)
    return value


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(_shown(v) for v in value)
    return repr(value) if isinstance(value, str) else _num(value)


def _check_value(leaf: Leaf, value: Any) -> list[Note]:
    p, kind = leaf.param, leaf.kind
    if value is None:
        if leaf.optional:
            return []
        refuse(leaf.name, "a value is needed")
    if kind is bool:
        if not isinstance(value, bool):
            refuse(leaf.name, "must be true or false")
        return []
    if kind is str:
        if not isinstance(value, str):
            refuse(leaf.name, "must be text")
        if p.choices is not None and value not in p.choices:
            refuse(leaf.name, f"choose from {', '.join(p.choices.ids)}")
        return []
    if kind in (int, float):
        return _check_number(leaf, value)
    if typing.get_origin(kind) in (tuple, list):
        for item in value:
            if isinstance(item, (int, float)) and not isinstance(item, bool) and not math.isfinite(item):
                refuse(leaf.name, "every number must be finite")
    return []


def _check_number(leaf: Leaf, value: Any) -> list[Note]:
    p = leaf.param
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        refuse(leaf.name, "must be a number")
    if leaf.kind is int and not float(value).is_integer():
        refuse(leaf.name, "must be a whole number")
    if not math.isfinite(value):
        refuse(leaf.name, "must be a finite number")
    if value in p.also:
        return []
    if p.values and value not in p.values:
        refuse(leaf.name, f"must be {p.range_text()}")
    allowed = p.range_text()
    why = f" ({p.why})" if p.why else ""
    low = p.min is not None and (value <= p.min if p.open_min else value < p.min)
    high = p.max is not None and (value >= p.max if p.open_max else value > p.max)
    if low or high:
        refuse(leaf.name, f"must be {allowed}{why}")
    if p.multiple > 1 and int(value) % p.multiple:
        refuse(leaf.name, f"must be {allowed}{why}")
    if p.usual is not None and not p.usual[0] <= value <= p.usual[1]:
        return [Note(leaf.name, f"outside the usual {_num(p.usual[0])}–{_num(p.usual[1])}{why}; running anyway")]
    return []


def _check_path(leaf: Leaf, value: Any) -> None:
    kind = leaf.param.path
    if isinstance(value, list):
        for item in value:
            _check_path(leaf, item)
        return
    if not kind or not value or not isinstance(value, str):
        return
    path = Path(value).expanduser()
    if kind == INPUT_FILE and not path.is_file():
        refuse(leaf.name, "no such file" if not path.exists() else "is a folder, not a file")
    elif kind == INPUT_FOLDER and not path.is_dir():
        refuse(leaf.name, "no such folder" if not path.exists() else "is a file, not a folder")
    elif kind in (INPUT_FILE, INPUT_FOLDER) and not os.access(path, os.R_OK | (os.X_OK if kind == INPUT_FOLDER else 0)):
        refuse(leaf.name, "cannot be read (no permission)")
    elif kind == OUTPUT_FOLDER:
        if path.exists() and not path.is_dir():
            refuse(leaf.name, "is a file, not a folder")
        writable(leaf.name, path)
    elif kind == OUTPUT_FILE:
        if path.is_dir():
            refuse(leaf.name, "is a folder, not a file")
        writable(leaf.name, path.parent)


def writable(field: str, folder: Path) -> None:
    """The folder, or the nearest one above it that exists, must be a folder we may write into."""
    existing = next((p for p in [folder, *folder.parents] if p.exists()), None)
    if existing is None or not existing.is_dir():
        refuse(field, f"cannot be made: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        refuse(field, f"cannot be written: {existing} is not writable")


def _check_models(part: Any, access: Any) -> None:
    """Every model the job will load (its ``models()``) is found locally (or may be downloaded) and is of the right kind."""
    for field_name, source, inspect in getattr(part, "models", lambda: [])():
        try:
            access.verify(source, inspect)  # a diffusion.sources.ModelAccess: stdlib only, so Blender's Python checks too
        except Refused:
            raise
        except BadInput as exc:  # worded for the option, which names the model already (unless the job picked one for it)
            named = source == getattr(part, field_name, None)
            raise Refused(field_name, _unnamed(str(exc), source) if named else str(exc)) from None


def _unnamed(text: str, source: str) -> str:
    """A model's refusal without its leading name: the refusal names the option and the model already."""
    for prefix in (f"Model {source!r} ", f"Model {source} ", f"{source}: ", f"{source} "):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


# Parameters several jobs share, declared once ----------------------------------------------------------------


def seed_field(help: str = "Same seed and settings give the same result; sample i uses seed + i", **how: Any) -> Any:
    return param(0, "Seed", help, min=0, max=SEED_MAX, why="Blender's integer properties are 32-bit", **how)


def steps_field(default: int, help: str = "Denoising steps", label: str = "Steps", **how: Any) -> Any:
    how.setdefault("soft", (1, 200))
    return param(default, label, help, min=1, max=STEPS_MAX, why="the models' schedules have 1000 steps", **how)


def guidance_field(default: float, help: str = "How strongly the prompt steers (classifier-free guidance)", **how: Any) -> Any:
    how.setdefault("usual", (1.0, 30.0))
    return param(default, "Guidance", help, min=0.0, max=100.0, **how)


def count_field(maximum: int, help: str = "How many results; result i uses seed + i", **how: Any) -> Any:
    return param(1, "Count", help, min=1, max=maximum, **how)


def overwrite_field(help: str = "Replace files already in the output folder") -> Any:
    return param(False, "Overwrite", help)


def output_folder_field(help: str, label: str = "Output Folder", **how: Any) -> Any:
    """The job's output folder: ``--out`` on the command line (required there), ``output_dir`` in Blender (empty: a new one)."""
    how = {"cli": "--out", "cli_required": True, "prop": "output_dir", **how}
    return param("", label, help, path=OUTPUT_FOLDER, **how)


def prompt_field(default: str = "", help: str = "What the result shows", **how: Any) -> Any:
    return param(default, "Prompt", help, **how)


def negative_prompt_field(help: str = "What it should not show", **how: Any) -> Any:
    return param("", "Negative Prompt", help, **how)


def model_field(default: str, label: str, help: str, **how: Any) -> Any:
    return param(default, label, f"{help}: a folder (absolute, or in the models folder) or a Hugging Face repo id", model=True, **how)


def recommended_steps(scheduler: str = "DDIM") -> int:
    """The steps a sampler is usually run at (the choice list says), for a job's default."""
    return SCHEDULERS[scheduler].steps


def scheduler_field(default: str = "DDIM", **how: Any) -> Any:
    return param(default, "Sampler", "How the noise is taken away, step by step", choices=SCHEDULERS, **how)

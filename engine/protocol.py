"""The subprocess worker's wire format: JSON lines, arrays as ``.npy`` files.

A message is one JSON object per line. Dataclasses become plain objects; numpy
arrays are saved into the private scratch folder the client created and travel
as ``{"__npy__": name}``; the receiver loads (never with pickle) and deletes
them. Nothing here can carry a Python object the other side must unpickle.
The receiver rebuilds a request or result from its class's type hints, nested
dataclasses and tuples included, so jobs get what the sender built.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import json
import os
import types
import typing
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from .errors import BadInput

_NPY = "__npy__"


def encode(value: Any, scratch: Path) -> Any:
    """JSON-ready form of ``value``; arrays are written to ``scratch``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name), scratch) for f in dataclasses.fields(value)}
    if isinstance(value, np.ndarray):
        name = f"{uuid.uuid4().hex}.npy"
        np.save(scratch / name, np.ascontiguousarray(value), allow_pickle=False)
        return {_NPY: name}
    if isinstance(value, dict):
        return {str(k): encode(v, scratch) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v, scratch) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def decode(value: Any, scratch: Path) -> Any:
    """Inverse of :func:`encode` for plain values; arrays are loaded and their files removed."""
    if isinstance(value, dict):
        if set(value) == {_NPY}:
            return _load_array(scratch, value[_NPY])
        return {k: decode(v, scratch) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v, scratch) for v in value]
    return value


def _load_array(scratch: Path, name: str) -> np.ndarray:
    if os.path.basename(name) != name or not name.endswith(".npy"):
        raise ValueError(f"Refusing array reference {name!r}")
    path = scratch / name
    try:
        return np.load(path, allow_pickle=False)
    finally:
        path.unlink(missing_ok=True)


def decode_as(cls: type, value: dict[str, Any], scratch: Path) -> Any:
    """Rebuild dataclass ``cls`` from an encoded object, following its type hints.

    Fields typed as dataclasses come back as those dataclasses, also inside
    ``Optional``, lists, dicts and tuples; tuples come back as tuples.
    """
    return _rebuild(cls, decode(value, scratch))


_SEQUENCES = (list, collections.abc.Sequence, collections.abc.MutableSequence)
_MAPPINGS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)


def _rebuild(hint: Any, value: Any) -> Any:
    """``value`` (decoded JSON) as the type ``hint`` describes; values it cannot place are left as they are."""
    if value is None:
        return None
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass(hint, value) if isinstance(value, dict) else value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        present = [a for a in args if a is not type(None)]
        return _rebuild(present[0], value) if len(present) == 1 else value
    if (origin is tuple or hint is tuple) and isinstance(value, list):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_rebuild(args[0], v) for v in value)
        if args and len(args) == len(value):
            return tuple(_rebuild(a, v) for a, v in zip(args, value))
        return tuple(value)
    if origin in _SEQUENCES and isinstance(value, list):
        return [_rebuild(args[0], v) for v in value] if args else value
    if origin in _MAPPINGS and isinstance(value, dict):
        return {k: _rebuild(args[1], v) for k, v in value.items()} if len(args) == 2 else value
    return value


def _dataclass(cls: type, value: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {name: _rebuild(hints.get(name, Any), item) for name, item in value.items()}
    try:
        return cls(**fields)
    except TypeError as exc:  # missing or unknown fields: another engine version, or a bad message
        raise BadInput(f"Bad {cls.__name__}: {exc}") from None


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), allow_nan=True) + "\n"


def loads(line: str) -> dict[str, Any]:
    message = json.loads(line)
    if not isinstance(message, dict) or "type" not in message:
        raise ValueError(f"Not a worker message: {line[:200]!r}")
    return message

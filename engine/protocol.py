"""The subprocess worker's wire format: JSON lines, arrays as ``.npy`` files.

A message is one JSON object per line. Dataclasses become plain objects; numpy
arrays are saved into the private scratch folder the client created and travel
as ``{"__npy__": name}``; the receiver loads (never with pickle) and deletes
them. Nothing here can carry a Python object the other side must unpickle.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
import uuid
from pathlib import Path
from typing import Any

import numpy as np

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
    """Rebuild dataclass ``cls`` from an encoded object, restoring tuples."""
    fields = decode(value, scratch)
    hints = typing.get_type_hints(cls)
    for name, hint in hints.items():
        if typing.get_origin(hint) is tuple and isinstance(fields.get(name), list):
            fields[name] = tuple(fields[name])
    return cls(**fields)


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), allow_nan=True) + "\n"


def loads(line: str) -> dict[str, Any]:
    message = json.loads(line)
    if not isinstance(message, dict) or "type" not in message:
        raise ValueError(f"Not a worker message: {line[:200]!r}")
    return message

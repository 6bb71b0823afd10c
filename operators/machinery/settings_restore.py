"""Change Blender settings for one operation and put every one of them back."""

from __future__ import annotations

from typing import Any


class TemporarySettings:
    """``with TemporarySettings() as t: t.set(owner, "attr", value)`` restores on exit, in reverse."""

    def __init__(self) -> None:
        self._saved: list[tuple[Any, str, Any]] = []

    def set(self, owner: Any, name: str, value: Any) -> None:
        self._saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    def restore(self) -> None:
        """Put back every setting's first value, in reverse order.

        A value refused now (an enum that depends on another setting, like
        colour depth on file format) is retried after the rest, and Blender
        resets some settings when others change (a new file format resets the
        colour depth), so passes repeat until every setting holds its value.
        """
        saved, self._saved = self._saved, []
        first: dict[tuple[int, type, str], tuple[Any, str, Any]] = {}
        for owner, name, value in saved:  # each access makes a new Python object: key by Blender's pointer and type
            first.setdefault((owner.as_pointer(), type(owner), name), (owner, name, value))  # (a nested struct can share its parent's)
        pending = list(reversed(first.values()))
        for attempt in range(4):
            if attempt:  # the first pass sets everything: a value can read back the same yet be stored differently
                pending = [(owner, name, value) for owner, name, value in pending if getattr(owner, name) != value]
            for owner, name, value in pending:
                try:
                    setattr(owner, name, value)
                except (TypeError, ValueError):
                    pass  # retried in the next pass, once what it depends on is back
            if all(getattr(owner, name) == value for owner, name, value in pending):
                return
        for owner, name, value in pending:
            setattr(owner, name, value)  # raise the real error

    def __enter__(self) -> TemporarySettings:
        return self

    def __exit__(self, *_: object) -> None:
        self.restore()

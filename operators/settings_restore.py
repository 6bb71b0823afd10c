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
        """Undo in reverse; a value refused now (an enum that depends on another
        setting, like colour depth on file format) is retried after the rest."""
        pending, self._saved = list(reversed(self._saved)), []
        for _attempt in range(3):
            refused = []
            for owner, name, value in pending:
                try:
                    setattr(owner, name, value)
                except (TypeError, ValueError):
                    refused.append((owner, name, value))
            if not refused:
                return
            pending = refused
        for owner, name, value in pending:
            setattr(owner, name, value)  # raise the real error

    def __enter__(self) -> "TemporarySettings":
        return self

    def __exit__(self, *_: object) -> None:
        self.restore()

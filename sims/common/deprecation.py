"""Old names that keep working for one release, with a ``DeprecationWarning`` naming the new.

Users script against the CLI, the figure files and the Python names; a renamed function or
constant stays importable under its old name (``alias``) and a renamed module attribute
through the module's ``__getattr__`` (``module_getattr``), both warning once per use.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Callable
from typing import Any


def warn(old: str, new: str, stacklevel: int = 3) -> None:
    """Warns that ``old`` is deprecated in favour of ``new``."""
    warnings.warn(
        f"{old} is deprecated; use {new} (the old name will be removed)",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def alias(old: str, new: str, func: Callable) -> Callable:
    """``func`` under its old name ``old``: same behaviour, plus a DeprecationWarning."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        warn(old, new)
        return func(*args, **kwargs)

    wrapper.__name__ = old.rsplit(".", 1)[-1]
    wrapper.__qualname__ = wrapper.__name__
    wrapper.__doc__ = f"Deprecated alias of ``{new}``.\n\n{func.__doc__ or ''}"
    return wrapper


def module_getattr(module: str, moved: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving old attribute names.

    Args:
        module: the module's ``__name__``.
        moved: old attribute name → new dotted name ``"package.module.attr"``.
    """

    def __getattr__(name: str) -> Any:
        if name not in moved:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        new = moved[name]
        warn(f"{module}.{name}", new)
        where, attr = new.rsplit(".", 1)
        return getattr(importlib.import_module(where), attr)

    return __getattr__

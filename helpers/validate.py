"""Argument checks shared by the helpers: a bad argument gets a TypeError or ValueError
that names it and says what was expected."""

from __future__ import annotations

from typing import Any

__all__ = ["check_count", "check_number", "check_seconds", "check_str"]


def check_number(value: Any, name: str = "x") -> float | int:
    """An int or float (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    return value


def check_seconds(value: Any, name: str = "seconds") -> float:
    """A duration: a number >= 0, returned as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return float(value)


def check_count(value: Any, name: str = "n", minimum: int = 0) -> int:
    """An int (not a bool) >= minimum."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_str(value: Any, name: str, *, nonempty: bool = False) -> str:
    """A str; with ``nonempty``, not ''."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if nonempty and not value:
        raise ValueError(f"{name} must not be empty")
    return value

"""One-line error messages for the command line."""

from __future__ import annotations

__all__ = ["error_line"]


def error_line(err: BaseException) -> str:
    """The one-line message of an error: ``str(err)``, except that a ``KeyError``'s message loses the quotes
    ``str`` adds around it."""
    return str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)

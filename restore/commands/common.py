"""Conventions shared by every ``restore`` sub-command: the error line, defaults in ``--help``, exit statuses.

- An argparse mistake prints one usage line and one ``<prog>: error: ...`` line, then exits with status 2.
- Every ``--help`` shows every default (``(default: X)``), and ends with the exit statuses.
- Errors are one line each on stderr: ``restore <command>: error: <what, naming the file, key or flag>``.
- Exit statuses: 0 done; 1 some inputs failed; 2 unusable options, flags or weights; 130 interrupted.
- ``--param-key``: named, the entry must exist; unnamed, ``params_ema`` is loaded, else ``params``.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from restore.engine.loading import LoadedModel

__all__ = [
    "EXIT_DONE", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_STATUS_HELP", "EXIT_USAGE", "PARAM_KEY_HELP",
    "CommandParser", "HelpFormatter", "load_weights", "nearest", "report_errors",
]  # fmt: skip

EXIT_DONE, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_STATUS_HELP = (
    "Exit status: 0 done; 1 some inputs failed; 2 unusable options, flags or weights; 130 interrupted."
)
#: The one meaning of ``--param-key`` (``infer``, ``info``, ``export``, ``lam``).
PARAM_KEY_HELP = "checkpoint entry to load; a named entry must exist (default: params_ema, else params)"


class HelpFormatter(argparse.HelpFormatter):
    """Adds ``(default: X)`` to every option with a default that its help does not already state."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "default" in text or action.required or default is argparse.SUPPRESS:
            return text
        if default is None or default is False or default == "" or default == []:
            return text
        return f"{text} (default: %(default)s)"


class CommandParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with the conventions of the module docstring."""

    def __init__(self, *args: Any, exit_statuses: str = EXIT_STATUS_HELP, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        epilog = kwargs.pop("epilog", None)
        kwargs["epilog"] = " ".join(part for part in (epilog, exit_statuses) if part) or None
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """One usage line, one error line, exit status 2 (argparse prints the whole usage block)."""
        sys.stderr.write(f"usage: {self.prog} [options]; '{self.prog} -h' lists them\n{self.prog}: error: {message}\n")
        sys.exit(EXIT_USAGE)


def load_weights(
    weights: str | Path, param_key: str | None, network_g: dict[str, Any] | None = None
) -> LoadedModel:
    """A checkpoint as every command loads it: ``--param-key`` named, that entry must exist; unnamed,
    ``params_ema``, else ``params``. ``network_g`` builds the network (default: detected from the weights).

    Raises:
        restore.engine.loading.ModelLoadError: unusable weights, key or options (one line).
    """
    from restore.engine.loading import load_model

    key = param_key or "params_ema"
    return load_model(weights, network_g, param_key=key, require_key=param_key is not None)


def report_errors(prog: str, problems: Sequence[str] | str) -> None:
    """Each problem as one ``<prog>: error: <problem>`` line on stderr."""
    for problem in [problems] if isinstance(problems, str) else problems:
        print(f"{prog}: error: {problem}", file=sys.stderr)


def nearest(name: str, choices: Iterable[str]) -> str | None:
    """The choice closest to a mistyped ``name`` (``upscal`` -> ``upscale``), if any is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None

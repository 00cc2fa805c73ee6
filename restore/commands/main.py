"""The ``restore`` command: dispatches to one module per sub-command in :mod:`restore.commands`.

    restore infer   -i IN -o OUT [--weights W] [...] restore image files with any supported model
    restore upscale -i IN -o OUT [--weights W] [...] the same, refusing models that do not upscale
    restore derain  -i IN -o OUT --weights W [...]   remove rain with a deraining model (none is bundled)
    restore info    WEIGHTS                          detected architecture, its network_g and parameter count
    restore export  --weights W -o model.onnx [...]  export to ONNX, verified in ONNX Runtime
    restore test    -opt OPTIONS.yml [...]           evaluate on the datasets of an option file
    restore train   -opt OPTIONS.yml [...]           train from an option file
    restore compare --gt GT RESULT ... -o FIGS       comparison figures and an index.html
    restore lam     -i LR.png --window x,y[,size] -o OUT [--weights W] [...]   Local Attribution Maps

Without ``--weights``, ``infer`` and ``upscale`` use the bundled x4 demo model (``restore.assets.DEFAULT_WEIGHTS``),
as ``python restore/infer.py`` does.
Sub-commands import their modules only when they run, so ``restore info`` does not pay for training code. Every
sub-command follows the conventions of :mod:`restore.commands.common` (error lines, defaults in help, exit statuses).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

__all__ = ["COMMANDS", "main"]


def _infer(task: str | None) -> Callable[[list[str], str], int]:
    def run(argv: list[str], prog: str) -> int:
        from restore.commands.infer import main as infer_main

        return infer_main(argv, prog=prog, task=task)

    return run


def _set_threads(prog: str) -> bool:
    """Default CPU thread pools for the command (``RESTORE_THREADS``; see ``restore.utils.threads``)."""
    from restore.utils.threads import set_threads

    try:
        set_threads()
    except ValueError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return False
    return True


def _delegate(module: str) -> Callable[[list[str], str], int]:
    def run(argv: list[str], prog: str) -> int:
        if not _set_threads(prog):
            return 2
        try:
            entry = importlib.import_module(module).main
        except (ImportError, AttributeError) as err:
            print(f"{prog}: error: {module}.main is not available ({err})", file=sys.stderr)
            return 2
        status = entry(argv)
        return status if isinstance(status, int) else 0

    return run


COMMANDS: dict[str, tuple[Callable[[list[str], str], int], str]] = {
    "infer": (_infer(None), "restore image files with any supported model (default: the bundled x4 demo model)"),
    "upscale": (_infer("upscale"), "super-resolve image files; the model must upscale (default: bundled x4 demo)"),
    "derain": (_infer("derain"), "remove rain from image files with a deraining model (--weights required)"),
    "info": (_delegate("restore.commands.info"), "a checkpoint's detected architecture, network_g and parameter count"),
    "export": (_delegate("restore.commands.export"), "export a checkpoint to ONNX, verified with ONNX Runtime"),
    "test": (_delegate("restore.commands.test"), "evaluate a model on the datasets of an option file (-opt)"),
    "train": (_delegate("restore.commands.train"), "train a model from an option file (-opt)"),
    "compare": (_delegate("restore.commands.compare"), "figures of zoomed crops with PSNR/SSIM, and an index.html"),
    "lam": (_delegate("restore.commands.lam"), "Local Attribution Maps (LAM) of one SR window, with the DI"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name.ljust(width)}  {text}" for name, (_, text) in COMMANDS.items()]
    return (
        "usage: restore <command> [options]\n\ncommands:\n" + "\n".join(lines) + "\n\n'restore <command> -h' for help\n"
        "Exit status: 0 done; 1 some inputs failed; 2 unusable options, flags or weights; 130 interrupted."
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``restore`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from restore import __version__

        print(f"restore {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        from restore.commands.common import nearest

        close = nearest(name, COMMANDS)
        hint = f"; did you mean {close!r}?" if close else f"; commands: {', '.join(COMMANDS)}"
        print(f"usage: restore <command> [options]; 'restore -h' lists the commands\n"
              f"restore: error: unknown command {name!r}{hint}", file=sys.stderr)  # fmt: skip
        return 2
    prog = f"restore {name}"
    try:
        return COMMANDS[name][0](rest, prog)
    except KeyboardInterrupt:  # commands that do not report it themselves
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

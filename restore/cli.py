"""The ``restore`` command.

    restore infer   -i IN -o OUT [--weights W] [...] restore image files with any supported model
    restore upscale -i IN -o OUT [--weights W] [...] the same, refusing models that do not upscale
    restore derain  -i IN -o OUT --weights W [...]   the same, refusing models that are not deraining models
    restore info    WEIGHTS                          detected architecture, its network_g and parameter count
    restore export  --weights W -o model.onnx [...]  export to ONNX, verified in ONNX Runtime
    restore test    -opt OPTIONS.yml [...]           evaluate on the datasets of an option file
    restore train   -opt OPTIONS.yml [...]           train from an option file

Without ``--weights``, ``infer`` and ``upscale`` use the bundled x4 demo model (``restore.assets.DEFAULT_WEIGHTS``).
Sub-commands import their modules only when they run, so ``restore info`` does not pay for training code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

import yaml

__all__ = ["main"]


def _given(argv: Sequence[str], option: str) -> bool:
    """Whether ``argv`` sets ``option`` (``--opt X``, ``--opt=X`` or an unambiguous prefix such as ``--weig``)."""
    names = (arg.split("=", 1)[0] for arg in argv if arg.startswith("--") and len(arg) > 3)
    return any(option.startswith(name) for name in names)


def _with_default_weights(argv: list[str], prog: str, task: str | None) -> list[str] | None:
    """``argv`` with the bundled model added when no ``--weights`` is given; None (error printed) for derain."""
    if _given(argv, "--weights") or _given(argv, "--onnx") or "-h" in argv or _given(argv, "--help"):
        return argv
    if task == "derain":
        reason = "no deraining model is bundled; pass a checkpoint such as DRSformer's"
        print(f"{prog}: error: --weights is required ({reason})", file=sys.stderr)
        return None
    if _given(argv, "--opt"):
        print(f"{prog}: error: --opt needs --weights (the bundled model has its own options)", file=sys.stderr)
        return None
    from restore.assets import DEFAULT_OPTIONS, DEFAULT_WEIGHTS

    print(f"{prog}: no --weights given, using the bundled x4 demo model {DEFAULT_WEIGHTS}", file=sys.stderr)
    return [*argv, "--weights", str(DEFAULT_WEIGHTS), "--opt", str(DEFAULT_OPTIONS)]


def _infer(task: str | None) -> Callable[[list[str], str], int]:
    def run(argv: list[str], prog: str) -> int:
        from restore.infer import main as infer_main

        full = _with_default_weights(argv, prog, task)
        return 2 if full is None else infer_main(full, prog=prog, task=task)

    return run


def _delegate(module: str) -> Callable[[list[str], str], int]:
    def run(argv: list[str], prog: str) -> int:
        try:
            entry = importlib.import_module(module).main
        except (ImportError, AttributeError) as err:
            print(f"{prog}: error: {module}.main is not available ({err})", file=sys.stderr)
            return 2
        status = entry(argv)
        return status if isinstance(status, int) else 0

    return run


def _info(argv: list[str], prog: str) -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Show what a checkpoint holds.")
    parser.add_argument("weights", help="checkpoint (.pth/.pt/.safetensors)")
    parser.add_argument("--opt", help="YAML whose network_g builds the network (default: detect)")
    parser.add_argument("--param-key", default="params_ema", help="checkpoint key to load (falls back to params)")
    args = parser.parse_args(argv)
    from restore.engine.forward import network_spec
    from restore.engine.loading import ModelLoadError, load_model, network_options_from_yaml, task_of

    try:
        network_g = network_options_from_yaml(args.opt) if args.opt else None
        model = load_model(args.weights, network_g, param_key=args.param_key)
    except ModelLoadError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    spec = network_spec(model.net)
    source = "detected from the weights" if model.detected else f"from {args.opt}"
    print(f"file:         {args.weights}")
    print(f"architecture: {model.network_g['type']} ({source})")
    print(f"task:         {task_of(model.net)}")
    print(f"scale:        {spec.scale}")
    print(f"pad multiple: {spec.pad_multiple}")
    print(f"fp16 safe:    {'yes' if spec.supports_fp16 else 'no (use bf16)'}")
    print(f"parameters:   {model.parameters:,}")
    print("network_g:")
    print(
        "  " + yaml.safe_dump(model.network_g, sort_keys=False, default_flow_style=None).rstrip().replace("\n", "\n  ")
    )
    return 0


COMMANDS: dict[str, tuple[Callable[[list[str], str], int], str]] = {
    "infer": (_infer(None), "restore image files with any supported model"),
    "upscale": (_infer("upscale"), "restore image files; the model must upscale (scale > 1)"),
    "derain": (_infer("derain"), "restore image files; the model must be a deraining model"),
    "info": (_info, "show the detected architecture, network_g and parameter count of a checkpoint"),
    "export": (_delegate("restore.export.cli"), "export a checkpoint to ONNX, verified with ONNX Runtime"),
    "test": (_delegate("restore.test"), "evaluate a model on the datasets of an option file (-opt)"),
    "train": (_delegate("restore.train"), "train a model from an option file (-opt)"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name.ljust(width)}  {text}" for name, (_, text) in COMMANDS.items()]
    return (
        "usage: restore <command> [options]\n\ncommands:\n" + "\n".join(lines) + "\n\n'restore <command> -h' for help"
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
        print(f"restore: error: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    return COMMANDS[name][0](rest, f"restore {name}")


if __name__ == "__main__":
    sys.exit(main())

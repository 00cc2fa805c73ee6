"""``python restore/infer.py -i INPUT -o OUTDIR [...]``: the same program as ``restore infer``.

A thin script around :func:`restore.commands.infer.main` (see there for the options). Several GPUs:
``torchrun --nproc_per_node=N restore/infer.py ...`` gives each rank every N-th file and one device.
"""

from __future__ import annotations

import sys

if __package__ in (None, ""):  # run as a file: import the package from this checkout, not from restore/ itself
    import pathlib

    _HERE = pathlib.Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != _HERE]
    sys.path.insert(0, str(_HERE.parent))

from restore.commands.infer import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())

"""Train or fine-tune: ``python restore/train.py -opt options/train/X.yml [--auto_resume] [--launcher pytorch]``.

Multi-GPU: ``torchrun --nproc_per_node=N restore/train.py -opt X.yml --launcher pytorch``.
A thin script around :func:`restore.commands.train.main`; see ``restore.models.runner`` for the checkpoint layout.
"""

import sys
from pathlib import Path

if not __package__:  # run as a script: the repository root replaces restore/ itself at the head of sys.path
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from restore.commands.train import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

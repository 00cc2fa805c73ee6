"""The ``restore`` console command (``restore = restore.cli:main``; also ``python -m restore.cli``).

The dispatcher lives in :mod:`restore.commands.main`, one module per sub-command in :mod:`restore.commands`.
"""

import sys

from restore.commands.main import COMMANDS, main

__all__ = ["COMMANDS", "main"]

if __name__ == "__main__":
    sys.exit(main())

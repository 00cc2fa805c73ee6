"""``python restore/test.py -opt options/test/X.yml [--force_yml KEY:SUBKEY=VALUE ...]``: run a benchmark.

A thin script around :func:`restore.commands.test.main` (also available as ``restore test -opt ...``).
"""

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:
    # Run as a file: Python put restore/ itself first on sys.path; make it the repository root instead.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from restore.commands.test import main

if __name__ == "__main__":
    from restore.utils.threads import set_threads

    set_threads()  # RESTORE_THREADS or the default for this machine (see restore.utils.threads)
    sys.exit(main())

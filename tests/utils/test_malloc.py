"""keep_freed_memory: freed large tensors are reused instead of being mapped (and page-faulted) again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from restore.utils.malloc import MALLOC_ENV

ROOT = Path(__file__).resolve().parents[2]

_CHILD = r"""
import json, resource, torch
from restore.utils.threads import set_threads
set_threads(1)
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):  # the heap settles after a few blocks
    torch.ones(16 * 2**20)
before = faults()
for _ in range(5):
    torch.ones(16 * 2**20)  # 64 MiB, above glibc's largest mmap threshold (32 MiB)
print(json.dumps(faults() - before))
"""

pytestmark = pytest.mark.skipif(
    not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"), reason="the remedy is glibc's mallopt"
)


def _faults(setting: str | None) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(MALLOC_ENV, None)
    if setting is not None:
        env[MALLOC_ENV] = setting
    done = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_commands_keep_freed_memory_for_reuse() -> None:
    pages = 5 * 64 * 2**20 // os.sysconf("SC_PAGE_SIZE")
    assert _faults("default") >= pages // 2  # glibc's defaults: every block mapped and faulted in afresh
    assert _faults(None) < pages // 50  # what every command sets up: the freed block is reused


def test_opt_out(monkeypatch: pytest.MonkeyPatch) -> None:
    from restore.utils.malloc import keep_freed_memory

    monkeypatch.setenv(MALLOC_ENV, "default")
    assert keep_freed_memory() is False

"""configure_allocator: large tensors stop costing one page fault per 4 KiB page, as every command sets it up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from restore.utils.malloc import MALLOC_ENV, THP_ENV, configure_allocator

ROOT = Path(__file__).resolve().parents[2]

_CHILD = r"""
import json, resource
import restore.infer  # what a command imports before it sets up the process
from restore.utils.threads import set_threads
set_threads(1)
import torch
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):  # the heap settles after a few blocks
    torch.ones(16 * 2**20)
before = faults()
for _ in range(5):
    torch.ones(16 * 2**20)  # 64 MiB, above glibc's largest mmap threshold (32 MiB)
print(json.dumps(faults() - before))
"""

PAGES = 5 * 64 * 2**20 // os.sysconf("SC_PAGE_SIZE")
GLIBC = os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")


def _huge_pages_allowed() -> bool:
    try:
        return "[never]" not in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False


def _faults(setting: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k not in (MALLOC_ENV, THP_ENV)}
    env["PYTHONPATH"] = str(ROOT)
    if setting is not None:
        env[MALLOC_ENV] = setting
    done = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="measured against glibc's defaults")
def test_default_remedy_and_keep_cut_the_page_faults() -> None:
    assert _faults("default") >= PAGES // 2  # glibc's defaults: every block mapped and faulted in afresh
    assert _faults("keep") < PAGES // 50  # freed blocks reused
    if _huge_pages_allowed():
        assert _faults(None) < PAGES // 10  # the default: one fault per 2 MiB huge page


def test_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(THP_ENV, raising=False)
    monkeypatch.setenv(MALLOC_ENV, "default")
    assert configure_allocator() == "default" and THP_ENV not in os.environ
    monkeypatch.setenv(MALLOC_ENV, "hugepages")
    assert configure_allocator() == "hugepages" and os.environ[THP_ENV] == "1"
    monkeypatch.setenv(MALLOC_ENV, "lots")
    with pytest.raises(ValueError, match=r"^\$RESTORE_MALLOC: expected hugepages, keep or default, got 'lots'$"):
        configure_allocator()

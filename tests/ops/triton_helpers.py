"""Shared part of the Triton op tests: compiling kernels for a GPU architecture without a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_COMPILE = """
import importlib, json, sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
spec = json.load(sys.stdin)
module = importlib.import_module(spec["module"])
for kernel in spec["kernels"]:
    fn = getattr(module, kernel["name"])
    const = kernel["constexprs"]
    signature = {n: "constexpr" if n in const else kernel["types"].get(n, "i32") for n in fn.arg_names}
    source = ASTSource(fn=fn, signature=signature, constexprs={(fn.arg_names.index(n),): v for n, v in const.items()})
    triton.compile(source, target=GPUTarget("cuda", spec["arch"], 32), options={"num_warps": kernel["num_warps"]})
"""


def compile_for_gpu(module: str, kernels: list[dict], arch: int = 90) -> None:
    """Compile kernels to CUDA binaries for ``sm_<arch>`` in a fresh interpreter-free process (no GPU needed:
    Triton lowers to PTX and runs its bundled ptxas); fails with the compiler's message."""
    env = {**os.environ, "TRITON_INTERPRET": "0", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    spec = json.dumps({"module": module, "arch": arch, "kernels": kernels})
    done = subprocess.run([sys.executable, "-c", _COMPILE], input=spec, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

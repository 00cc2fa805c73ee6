"""README.md is part of the API: its commands and code blocks run as written.

What is checked, block by block (fenced code in README.md):

* every ``python`` block runs in a fresh interpreter from the repository root and must exit 0;
* in ``bash`` (or ``sh``, ``shell``, ``console``) blocks, every command (after joining ``\\`` continuations,
  splitting on ``&&`` and dropping ``#`` comments) that starts with ``restore``, ``python restore/<script>.py``
  or ``torchrun ... restore/<script>.py`` is checked; other commands (``pip``, ``pytest``, ``python scripts/...``
  benchmarks) are not;
* inline code of the form ``from restore... import a, b`` must import, and each name must not be a module.

How a command is checked (the rules other README sections must follow):

1. ``restore X`` runs as ``python -m restore.cli X`` and ``python restore/X.py`` as itself, in a subprocess from
   the repository root, and must exit 0.
2. Placeholder checkpoints: a file name matching :data:`CHECKPOINT_NAME` (a family prefix, ``HAT``, ``DRCT``,
   ``DLGSANet`` or ``DRSformer``, e.g. ``HAT_SRx4.pth``, ``DRSformer_Rain200H.pth``) or listed in
   :data:`GENERIC_CHECKPOINTS` (``W.pth``) is replaced by a tiny checkpoint of that family, built from the parity
   fixtures at the scale the name says (``SRx2``/``SRx3``/``SRx4``; default x4).
3. Outputs: the value of ``-o``/``--output``/``--out`` goes to a fresh temporary folder (same base name).
4. Inputs: the value of ``-i``/``--input`` is kept when it exists in the repository; otherwise it is replaced by a
   temporary folder (name ending in ``/``) or file (an image suffix) holding a small photo crop.
5. Commands that need data or hardware this test cannot have match :data:`EXTERNAL` (option-file runs ``-opt``,
   which need datasets and official weights; ``restore compare`` on a benchmark set's results; ``restore export``
   and ``--onnx`` runs, whose tracing takes minutes; ``torchrun`` launches). For them the arguments are parsed with the
   script's own parser (unknown or invalid options fail), and an option file given as a repository path must
   exist and validate (with the command's ``--force_yml`` overrides). A bare placeholder name (``X.yml``) is fine,
   and so are their ``datasets/``, ``results/`` and ``experiments/`` paths and exported ``.onnx`` models.
6. Any other path-like argument (one containing ``/`` or ending in a file suffix) must exist in the repository, or
   the test fails and names it: add it to the rules above rather than leaving a command unchecked.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import cv2
import pytest
import skimage
import torch

from restore.checkpoint import save_checkpoint

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

#: Placeholder checkpoint names: family prefix, then anything; the scale comes from ``SRx<N>`` in the name.
CHECKPOINT_NAME = re.compile(r"^(?P<family>HAT|DRCT|DLGSANet|DRSformer)[\w.-]*\.(pth|pt|ckpt|safetensors)$")
#: Placeholder names without a family: a HAT x4 checkpoint stands in.
GENERIC_CHECKPOINTS = {"W.pth": "HAT", "weights.pth": "HAT", "model.pth": "HAT"}
#: (family, scale) -> parity fixture whose ``state_dict`` becomes the tiny checkpoint.
TINY = {
    ("HAT", 2): "hat_tiny_x2_arch", ("HAT", 3): "hat_tiny_x3_pipeline", ("HAT", 4): "hat_tiny_x4_arch",
    ("DRCT", 2): "drct_tiny_x2_arch", ("DRCT", 4): "drct_tiny_x4_arch",
    ("DLGSANet", 3): "dlgsanet_tiny_x3_tlc16_arch", ("DLGSANet", 4): "dlgsanet_tiny_x4_arch",
    ("DRSformer", 1): "drsformer_tiny_nomefc_arch",
}  # fmt: skip
#: Commands that need external data or hardware (rule 5): (test on the argv, reason).
EXTERNAL = [
    (lambda argv: argv[0] == "torchrun", "torchrun launches several processes/nodes"),
    (lambda argv: _script(argv) in ("test", "train") and ("-opt" in argv or "--opt" in argv),
     "option-file runs need the datasets and official weights the file names"),
    (lambda argv: _script(argv) == "compare" and any(t.startswith("datasets/") for t in argv),
     "compares the GT of a benchmark set with the results of option-file runs"),
    (lambda argv: _script(argv) == "export" or "--onnx" in argv,
     "tracing a network takes minutes on CPU: tests/export exports and runs tiny networks of every family"),
]  # fmt: skip
OUTPUT_FLAGS = ("-o", "--output", "--out")
INPUT_FLAGS = ("-i", "--input")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
FILE_SUFFIX = re.compile(r"\.(pth|pt|ckpt|safetensors|ya?ml|png|jpe?g|bmp|tiff?|webp|onnx|json|csv|txt)$")
PY_SCRIPT = re.compile(r"^restore/(\w+)\.py$")


@dataclass(frozen=True)
class Block:
    lang: str
    body: str
    line: int


def code_blocks(text: str) -> list[Block]:
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        opening = re.match(r"^```(\w*)\s*$", lines[i])
        if opening:
            start, i = i, i + 1
            body = []
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            blocks.append(Block(opening.group(1), "\n".join(body), start + 1))
        i += 1
    return blocks


def _script(argv: list[str]) -> str | None:
    """The program a command runs: ``infer``, ``test``, ``train``, ... (``restore`` sub-command or script name)."""
    if argv[0] == "restore":
        return argv[1] if len(argv) > 1 else None
    for token in argv[1:]:
        match = PY_SCRIPT.match(token)
        if match:
            return match.group(1)
    return None


def shell_commands(body: str) -> list[str]:
    """The ``restore``/``python restore/*.py``/``torchrun`` commands of a shell block, one string each."""
    joined = re.sub(r"\\\n\s*", " ", body)
    out = []
    for line in joined.splitlines():
        for segment in line.split("&&"):
            argv = shlex.split(segment, comments=True)
            if not argv:
                continue
            is_script = argv[0] in ("python", "python3") and len(argv) > 1 and bool(PY_SCRIPT.match(argv[1]))
            is_launch = argv[0] == "torchrun" and any(PY_SCRIPT.match(t) for t in argv)
            if argv[0] == "restore" or is_script or is_launch:
                out.append(shlex.join(argv))
    return out


def _readme_items() -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    commands, python_blocks = [], []
    for block in code_blocks(README.read_text(encoding="utf-8")):
        if block.lang == "python":
            python_blocks.append((block.body, block.line))
        elif block.lang in ("bash", "sh", "shell", "console"):
            commands += [(command, block.line) for command in shell_commands(block.body)]
    return commands, python_blocks


COMMANDS, PYTHON_BLOCKS = _readme_items()


# ------------------------------------------------------------------------------------------------ artefacts


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("readme")


def _scale_of(name: str) -> int:
    match = re.search(r"SRx(\d)", name)
    return int(match.group(1)) if match else 4


def tiny_checkpoint(name: str, folder: Path, fixtures: Path) -> Path | None:
    """The stand-in for a placeholder checkpoint name (rule 2), or None when ``name`` is not one."""
    match = CHECKPOINT_NAME.match(name)
    family = match.group("family") if match else GENERIC_CHECKPOINTS.get(name)
    if family is None:
        return None
    scale = 1 if family == "DRSformer" else _scale_of(name)
    key = (family, scale) if (family, scale) in TINY else next(k for k in TINY if k[0] == family)
    target = folder / "weights" / name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        fx = torch.load(fixtures / "parity" / f"{TINY[key]}.pt", weights_only=True)
        suffix_ok = target.suffix in (".pth", ".pt", ".ckpt", ".safetensors")
        save_checkpoint(target if suffix_ok else target.with_suffix(".pth"), fx["state_dict"])
    return target


def _photo(path: Path) -> None:
    crop = cv2.imread(str(Path(skimage.__file__).parent / "data" / "astronaut.png"))[200:224, 180:212]
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), crop)


def _is_pathlike(token: str) -> bool:
    return not token.startswith("-") and ("/" in token or bool(FILE_SUFFIX.search(token))) and "=" not in token


@dataclass
class Prepared:
    argv: list[str]
    external: str | None


def prepare(command: str, folder: Path, fixtures: Path) -> Prepared:
    """Apply rules 2-6 to one README command."""
    argv = [t for t in shlex.split(command) if not (t.startswith("[") and t.endswith("]"))]  # optional [--x]
    external = next((why for test, why in EXTERNAL if test(argv)), None)
    out, previous = [], None
    for token in argv:
        name = Path(token).name
        if previous in OUTPUT_FLAGS:
            token = str(folder / "out" / name) + ("/" if token.endswith("/") else "")
        elif (ckpt := tiny_checkpoint(name, folder, fixtures)) is not None and not (REPO / token).exists():
            token = str(ckpt)
        elif previous in INPUT_FLAGS and not (REPO / token).exists():
            if token.endswith("/") or not token.lower().endswith(IMAGE_SUFFIXES):
                _photo(folder / "in" / name / "photo.png")
                token = str(folder / "in" / name)
            else:
                _photo(folder / "in" / name)
                token = str(folder / "in" / name)
        elif _is_pathlike(token) and not (REPO / token).exists() and token not in ("restore",):
            is_bare_option_placeholder = previous in ("-opt", "--opt") and "/" not in token and external is not None
            external_data = external is not None and (
                token.split("/")[0] in ("datasets", "results", "experiments") or token.endswith(".onnx")
            )
            if not (is_bare_option_placeholder or external_data):
                pytest.fail(
                    f"README command {command!r} uses {token!r}, which is not in the repository and not covered by "
                    "the placeholder rules of tests/test_readme.py"
                )
        out.append(token)
        previous = argv[len(out) - 1]
    return Prepared(out, external)


def _env() -> dict[str, str]:
    # the commands use the test process's torch threads (fewer under pytest-xdist, whose workers share the cores)
    threads = str(min(2, torch.get_num_threads()))
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": threads, "COLUMNS": "200"}


def _to_subprocess(argv: list[str]) -> list[str]:
    if argv[0] == "restore":
        return [sys.executable, "-m", "restore.cli", *argv[1:]]
    if argv[0] in ("python", "python3"):
        return [sys.executable, *argv[1:]]
    raise AssertionError(argv)


def check_external(argv: list[str]) -> None:
    """Rule 5: parse the arguments with the script's own parser; load the option file when it is a repo path."""
    script = _script(argv)
    start = argv.index("restore") + 2 if argv[0] == "restore" else next(
        i for i, t in enumerate(argv) if PY_SCRIPT.match(t)) + 1  # fmt: skip
    args = argv[start:]
    if script == "infer":
        from restore.commands.infer import build_parser

        build_parser().parse_args(args)
    elif script == "test":
        from restore.commands.test import build_parser
        from restore.utils.options import load_options

        parsed = build_parser().parse_args(args)
        if "/" in parsed.opt:
            load_options(REPO / parsed.opt, force_yml=parsed.force_yml)
    elif script == "train":
        from restore.commands.train import parse_args
        from restore.models.runner import load_train_options

        parsed = parse_args(args)
        if "/" in parsed.opt:
            load_train_options(str(REPO / parsed.opt), parsed.force_yml, parsed.debug)
    else:
        done = subprocess.run(_to_subprocess([argv[0] if argv[0] == "restore" else "python", *argv[start - 1 :],
                                              "--help"]), cwd=REPO, env=_env(), capture_output=True, text=True,
                              timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------------------------------------------- tests


def test_the_readme_has_the_documented_commands() -> None:
    """The parser finds what the README shows (a broken parser would make the other tests vacuous)."""
    texts = [c for c, _ in COMMANDS]
    assert any(c.startswith("restore upscale -i restore/assets/samples") for c in texts)  # the main command
    assert any(c.startswith("restore info") for c in texts)
    assert any(c.startswith("python restore/train.py") for c in texts)
    assert any(c.startswith("torchrun") for c in texts)
    assert PYTHON_BLOCKS


@pytest.mark.parametrize(("command", "line"), COMMANDS, ids=[f"L{line}:{c[:60]}" for c, line in COMMANDS])
def test_readme_command(command: str, line: int, workspace: Path, fixtures: Path) -> None:
    folder = workspace / f"L{line}_{abs(hash(command)) % 10**8}"
    prepared = prepare(command, folder, fixtures)
    if prepared.external is not None:
        check_external(prepared.argv)
        return
    done = subprocess.run(_to_subprocess(prepared.argv), cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, f"README line {line}: {command}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"


@pytest.mark.parametrize(("body", "line"), PYTHON_BLOCKS, ids=[f"L{line}" for _, line in PYTHON_BLOCKS])
def test_readme_python_block(body: str, line: int, workspace: Path, fixtures: Path) -> None:
    folder = workspace / f"py_L{line}"

    def substitute(match: re.Match) -> str:
        ckpt = tiny_checkpoint(match.group(2), folder, fixtures)
        return match.group(0) if ckpt is None else f"{match.group(1)}{ckpt}{match.group(1)}"

    code = re.sub(r"([\"'])([^\"'\n]+)\1", substitute, body)
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, f"README python block at line {line}:\n{done.stderr[-4000:]}"


INLINE_IMPORTS = sorted(set(re.findall(r"`(from restore[\w.]* import [\w, ]+)`", README.read_text(encoding="utf-8"))))


@pytest.mark.parametrize("statement", INLINE_IMPORTS)
def test_readme_inline_import(statement: str) -> None:
    namespace: dict = {}
    exec(statement, namespace)
    names = [n.strip() for n in statement.split(" import ", 1)[1].split(",")]
    for name in names:
        assert not isinstance(namespace[name], types.ModuleType), f"{statement}: {name} is a module"


def test_rules_catch_a_missing_option_file(workspace: Path, fixtures: Path) -> None:
    """A README command naming an option file that does not exist fails (the check is not vacuous)."""
    with pytest.raises(pytest.fail.Exception, match="not in the repository"):
        prepare("python restore/train.py -opt options/train/no_such_file.yml", workspace / "neg", fixtures)
    bad = prepare("restore upscale -i img.png -o out/ --weights HAT_SRx4.pth --no-such-flag", workspace / "neg2",
                  fixtures)  # fmt: skip
    done = subprocess.run(_to_subprocess(bad.argv), cwd=REPO, env=_env(), capture_output=True, text=True)
    assert done.returncode == 2

"""Build and check the benchmark folders described in ``datasets/README.md``.

SR benchmarks: from the original HR images in ``datasets/<Name>/HR`` this writes, for every scale ``s``,

- ``datasets/<Name>/GTmod{s}/<stem>.png``: HR cropped to multiples of ``s`` (top left);
- ``datasets/<Name>/LRbicx{s}/<stem>.png``: MATLAB bicubic ``imresize(GT, 1/s)`` (antialiased), computed in
  float64 on [0, 1] and rounded to 8 bits (``clip(round(x * 255))``), the LR inputs every SR paper uses.

Then every pair is checked: same file names, GT sides multiples of ``s``, LR = GT / ``s``. The other names that
the official HAT and DRCT option files use (``urban100``, ``BSDS100``, ``manga109``) are made as symbolic links to
the prepared sets, so those files run unchanged. ``--check`` only checks existing folders (e.g. downloaded ones);
``--deraining`` checks the deraining sets instead (input/target file names and sizes). ``--hr DIR --out DIR
--scale s`` makes LR images for any folder of HR images.

``--layout edsr`` writes the EDSR benchmark layout that the official DLGSANet option files read instead:
``<root>/<Name>/HR/<stem><ext>`` (input, kept as is) and ``<root>/<Name>/LR_bicubic/X{s}/<stem>x{s}<ext>`` (same
bicubic of the HR image mod-cropped to ``s``; ``<ext>`` is the HR file's, since the loader pairs names that way),
with sets ``Set5 Set14 B100 Urban100`` and ``root`` ``../data/benchmark`` (where those files look).

Usage:
    python scripts/prepare_benchmark.py                          # Set5 Set14 BSD100 Urban100 Manga109, x2 x3 x4
    python scripts/prepare_benchmark.py --datasets Set5 --scales 4
    python scripts/prepare_benchmark.py --check
    python scripts/prepare_benchmark.py --layout edsr               # ../data/benchmark/<Set>/LR_bicubic/X{s}
    python scripts/prepare_benchmark.py --deraining              # Rain200H Rain200L DID DDN SPA
    python scripts/prepare_benchmark.py --hr datasets/DF2K/DF2K_HR_sub --out datasets/DF2K/DF2K_bicx4_sub --scale 4
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from restore.data.imresize import imresize, modcrop, round_to_uint8  # noqa: E402

SR_BENCHMARKS = ("Set5", "Set14", "BSD100", "Urban100", "Manga109")
#: Other folder names the official HAT/DRCT test option files use for the same sets (made as symbolic links).
ALIASES = {"Urban100": ("urban100",), "BSD100": ("BSDS100",), "Manga109": ("manga109",)}
#: The EDSR benchmark layout (official DLGSANet option files): set names and default root.
EDSR_BENCHMARKS = ("Set5", "Set14", "B100", "Urban100")
EDSR_ROOT = ROOT.parent / "data" / "benchmark"
LOSSLESS_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")
DERAINING_SETS = ("Rain200H", "Rain200L", "DID", "DDN", "SPA")
SCALES = (2, 3, 4)
IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")
README = "datasets/README.md"


class DatasetError(ValueError):
    """A dataset is missing or inconsistent; one line naming the folder or file."""


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (hidden files skipped)."""
    if not folder.is_dir():
        raise DatasetError(f"{folder}: folder not found (see {README} for the expected layout)")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise DatasetError(f"{folder}: no images (see {README})")
    return files


def read_8bit(path: Path) -> np.ndarray:
    """uint8 BGR (H, W, 3) or gray (H, W); alpha is dropped, 16-bit files are refused."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DatasetError(f"{path}: cannot be decoded")
    if img.dtype != np.uint8:
        raise DatasetError(f"{path}: expected an 8-bit image, got {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    return img


def bicubic_lr(gt: np.ndarray, scale: int) -> np.ndarray:
    """LR of a mod-cropped uint8 GT: MATLAB bicubic by ``1 / scale`` on [0, 1] float64, rounded to uint8."""
    return round_to_uint8(imresize(gt.astype(np.float64) / 255.0, 1.0 / scale))


def write_png(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise DatasetError(f"{path}: could not be written")


def make_pairs(hr_dir: Path, gt_dir: Path | None, lr_dir: Path, scale: int) -> int:
    """Write ``GTmod`` (unless ``gt_dir`` is None) and ``LRbicx`` PNGs for every HR image; returns the count."""
    files = list_images(hr_dir)
    for path in files:
        gt = modcrop(read_8bit(path), scale)
        if gt.shape[0] == 0 or gt.shape[1] == 0:
            raise DatasetError(f"{path}: smaller than the scale {scale}")
        if gt_dir is not None:
            write_png(gt_dir / f"{path.stem}.png", gt)
        write_png(lr_dir / f"{path.stem}.png", bicubic_lr(gt, scale))
    return len(files)


def check_pairs(gt_dir: Path, lq_dir: Path, scale: int) -> int:
    """Same stems in both folders; GT sides multiples of ``scale``; LQ = GT / ``scale``. Returns the pair count."""
    gt_files, lq_files = list_images(gt_dir), list_images(lq_dir)
    gt_stems, lq_stems = {p.stem: p for p in gt_files}, {p.stem: p for p in lq_files}
    if len(gt_files) != len(lq_files) or gt_stems.keys() != lq_stems.keys():
        only_gt = sorted(gt_stems.keys() - lq_stems.keys())[:3]
        only_lq = sorted(lq_stems.keys() - gt_stems.keys())[:3]
        raise DatasetError(
            f"{gt_dir} has {len(gt_files)} images, {lq_dir} has {len(lq_files)}; "
            f"only in GT: {only_gt or '-'}, only in LQ: {only_lq or '-'}"
        )
    for stem, gt_path in gt_stems.items():
        (h, w), (h_lq, w_lq) = read_8bit(gt_path).shape[:2], read_8bit(lq_stems[stem]).shape[:2]
        if h % scale or w % scale:
            raise DatasetError(f"{gt_path}: {h}x{w} (HxW) is not a multiple of scale {scale}")
        if (h_lq * scale, w_lq * scale) != (h, w):
            raise DatasetError(
                f"{lq_stems[stem]}: {h_lq}x{w_lq} (HxW), expected {h // scale}x{w // scale} for {gt_path}"
            )
    return len(gt_files)


def prepare_sr(root: Path, names: Sequence[str], scales: Sequence[int], check_only: bool) -> list[str]:
    """Make (unless ``check_only``) and check ``<Name>/GTmod{s}`` + ``<Name>/LRbicx{s}``; returns report lines."""
    lines = []
    for name in names:
        base = root / name
        hr = base / "HR"
        if not base.is_dir():
            raise DatasetError(f"{base}: dataset {name} not found; put its original HR images in {hr} (see {README})")
        for s in scales:
            gt_dir, lr_dir = base / f"GTmod{s}", base / f"LRbicx{s}"
            if not check_only:
                if not hr.is_dir():
                    raise DatasetError(f"{hr}: HR images of {name} not found (see {README})")
                make_pairs(hr, gt_dir, lr_dir, s)
            count = check_pairs(gt_dir, lr_dir, s)
            lines.append(f"{name} x{s}: {count} pairs ok ({gt_dir.relative_to(root)}, {lr_dir.relative_to(root)})")
        lines += alias_status(root, name) if check_only else make_aliases(root, name)
    return lines


def make_aliases(root: Path, name: str) -> list[str]:
    """Symbolic links ``root/<alias> -> <name>`` for the official files' other names; returns report lines."""
    lines = []
    target = root / name
    for alias in ALIASES.get(name, ()):
        link = root / alias
        if link.exists() or link.is_symlink():
            if not link.exists() or not link.samefile(target):  # includes a dangling link
                raise DatasetError(f"{link}: exists and is not {target}; remove it so that it can link to {name}")
        else:
            try:
                link.symlink_to(name, target_is_directory=True)
            except OSError as err:
                raise DatasetError(f"{link}: cannot create a link to {name} ({err.strerror}); copy or rename") from None
        lines.append(f"{alias} -> {name} (name used by the official HAT/DRCT option files)")
    return lines


def alias_status(root: Path, name: str) -> list[str]:
    """``--check``: whether the official files' other names reach ``name``."""
    lines = []
    for alias in ALIASES.get(name, ()):
        link = root / alias
        ok = link.exists() and link.samefile(root / name)
        lines.append(f"{alias} -> {name}: {'ok' if ok else 'absent (run without --check to create it)'}")
    return lines


def edsr_lr_path(lr_dir: Path, hr_path: Path, scale: int) -> Path:
    """``LR_bicubic/X{s}/<stem>x{s}<ext>``: the name BasicSR pairs with ``HR/<stem><ext>`` (``filename_tmpl``)."""
    return lr_dir / f"{hr_path.stem}x{scale}{hr_path.suffix}"


def prepare_edsr(root: Path, names: Sequence[str], scales: Sequence[int], check_only: bool) -> list[str]:
    """Make (unless ``check_only``) and check ``<Name>/LR_bicubic/X{s}`` from ``<Name>/HR``; returns report lines."""
    lines = []
    for name in names:
        hr_dir = root / name / "HR"
        files = list_images(hr_dir)
        lossy = [p.name for p in files if p.suffix.lower() not in LOSSLESS_SUFFIXES]
        if lossy:
            raise DatasetError(
                f"{hr_dir}: {lossy[0]} is not lossless; the EDSR layout gives each LR file its HR file's extension, "
                f"so convert the HR images to PNG first"
            )
        for s in scales:
            lr_dir = root / name / "LR_bicubic" / f"X{s}"
            for path in files:
                gt = modcrop(read_8bit(path), s)
                lr_path = edsr_lr_path(lr_dir, path, s)
                if not check_only:
                    if gt.shape[0] == 0 or gt.shape[1] == 0:
                        raise DatasetError(f"{path}: smaller than the scale {s}")
                    write_png(lr_path, bicubic_lr(gt, s))
                if not lr_path.is_file():
                    raise DatasetError(f"{lr_path}: LR image of {path} not found")
                h_lq, w_lq = read_8bit(lr_path).shape[:2]
                if (h_lq * s, w_lq * s) != gt.shape[:2]:
                    raise DatasetError(
                        f"{lr_path}: {h_lq}x{w_lq} (HxW), expected {gt.shape[0] // s}x{gt.shape[1] // s}"
                    )
            lines.append(f"{name} x{s}: {len(files)} pairs ok ({name}/HR, {lr_dir.relative_to(root)})")
    return lines


def check_deraining(root: Path, names: Sequence[str]) -> list[str]:
    """Check ``deraining/<Name>/{train,test}/{input,target}``: same file names, same size per pair."""
    lines = []
    for name in names:
        base = root / "deraining" / name
        if not base.is_dir():
            raise DatasetError(f"{base}: deraining set {name} not found (see {README})")
        for split in ("train", "test"):
            if not (base / split).is_dir():
                lines.append(f"{name}/{split}: absent")
                continue
            count = check_pairs(base / split / "target", base / split / "input", 1)
            lines.append(f"{name}/{split}: {count} pairs ok")
    return lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root", type=Path, help="datasets folder (default: ./datasets; ../data/benchmark with --layout edsr)"
    )
    parser.add_argument(
        "--layout",
        choices=("basicsr", "edsr"),
        default="basicsr",
        help="basicsr: <Name>/GTmod{s} + LRbicx{s} (default); edsr: <Name>/HR + LR_bicubic/X{s}/<stem>x{s}",
    )
    parser.add_argument("--datasets", nargs="+", help="names to process (default: all SR or deraining sets)")
    parser.add_argument("--scales", nargs="+", type=int, default=list(SCALES), help="SR scales (default: 2 3 4)")
    parser.add_argument("--check", action="store_true", help="only check existing GTmod/LRbicx folders")
    parser.add_argument("--deraining", action="store_true", help="check the deraining sets instead")
    parser.add_argument("--hr", type=Path, help="any HR folder: write its bicubic LR images to --out")
    parser.add_argument("--out", type=Path, help="LR output folder for --hr")
    parser.add_argument("--scale", type=int, help="scale for --hr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.hr is not None:
            if args.out is None or args.scale is None:
                raise DatasetError("--hr needs --out and --scale")
            count = make_pairs(args.hr, None, args.out, args.scale)
            lines = [f"{args.out}: {count} LR images (x{args.scale}, from HR mod-cropped to multiples of the scale)"]
        elif args.deraining:
            lines = check_deraining(args.root or ROOT / "datasets", args.datasets or DERAINING_SETS)
        elif args.layout == "edsr":
            lines = prepare_edsr(args.root or EDSR_ROOT, args.datasets or EDSR_BENCHMARKS, args.scales, args.check)
        else:
            lines = prepare_sr(args.root or ROOT / "datasets", args.datasets or SR_BENCHMARKS, args.scales, args.check)
    except DatasetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

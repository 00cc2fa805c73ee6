"""Install with ``pip install -e .`` (CPU machines: ``pip install torch==2.13.0`` first to avoid a CUDA download)."""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
VERSION = next(
    line.split("=")[1].strip().strip('"')
    for line in (ROOT / "restore" / "__init__.py").read_text().splitlines()
    if line.startswith("__version__")
)

TRITON = "triton==3.7.1; platform_system == 'Linux' and platform_machine == 'x86_64'"
ONNX = ["onnx", "onnxscript", "onnxruntime"]

setup(
    name="restore",
    version=VERSION,
    description="HAT, DRCT, DLGSANet and DRSformer with shared fast ops, a tiled engine, benchmarks and training",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["restore", "restore.*"]),
    package_data={
        "restore": ["py.typed", "metrics/data/*.npz", "metrics/data/NOTICE", "assets/weights/*", "assets/samples/*"]
    },
    install_requires=[
        "torch>=2.4",
        "numpy",
        "opencv-python-headless",
        "pyyaml",
        "tqdm",
        "kornia",
        "safetensors",
        "Pillow",
    ],
    extras_require={
        # tests: scikit-image ships the sample photos; triton runs the kernels through its CPU interpreter;
        # pytest-xdist spreads the suite over the cores
        "dev": ["pytest", "pytest-xdist", "ruff", "scikit-image", TRITON, *ONNX],
        "onnx": ONNX,  # restore export, restore infer --onnx
        "metrics": ["lpips"],
        "cuda": [TRITON],
    },
    entry_points={"console_scripts": ["restore = restore.cli:main"]},
    classifiers=["Programming Language :: Python :: 3", "Topic :: Scientific/Engineering :: Image Processing"],
)

"""restore: HAT, DRCT, DLGSANet and DRSformer with shared fast ops, a tiled engine, benchmarks and training."""

__version__ = "0.1.0"

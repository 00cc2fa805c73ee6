"""Analysis tools: Local Attribution Maps (:func:`lam`)."""

from restore.analysis.lam import LamResult, lam

__all__ = ["LamResult", "lam"]

"""Seeing results: comparison figures, HTML reports and Local Attribution Maps.

``compare_folders`` writes paper-style figures and an ``index.html`` for folders of results (``restore compare``);
``write_report`` renders the self-contained HTML report that ``restore test`` also writes (``val: {report: true}``);
:func:`lam` computes a Local Attribution Map and its Diffusion Index (``restore lam``).
"""

from restore.analysis.compare import compare_folders
from restore.analysis.lam import LamResult, lam
from restore.analysis.report import write_report

__all__ = ["LamResult", "compare_folders", "lam", "write_report"]

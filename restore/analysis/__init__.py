"""Seeing results: comparison figures and HTML reports.

``compare_folders`` writes paper-style figures and an ``index.html`` for folders of results (``restore compare``);
``write_report`` renders the self-contained HTML report that ``restore test`` also writes (``val: {report: true}``).
"""

from restore.analysis.compare import compare_folders
from restore.analysis.report import write_report

__all__ = ["compare_folders", "write_report"]

"""Reports of upgrade runs for people: a self-contained HTML page (:mod:`pitstop.report.html`)."""

from pitstop.report.html import render_html, write_report

__all__ = ["render_html", "write_report"]

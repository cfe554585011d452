"""A session's story for people who will not open the app: one self-contained HTML report.

`write_report(session_folder, out)` gathers the facts (`session_facts.gather`) and renders them
(`html_report.render`). Sits on the floor of `app.run` (it reads sessions); the command line and
the desktop app call it.
"""

from app.report.html_report import render, write_report
from app.report.session_facts import SessionFacts, gather

__all__ = ["SessionFacts", "gather", "render", "write_report"]

"""The main window's "Import masks..." and "Report..." buttons (issue 24), on its Session box.

Torch-free, like the rest of the main window's modules: the import dialog
(`ui.windows.mask_import_dialog`, whose mask formats load torch) and the report (`app.report`)
are imported when their button is pressed, so the window shows before torch is loaded.
"""

from __future__ import annotations

import queue
import threading
import webbrowser
from pathlib import Path
from tkinter import filedialog, ttk
from typing import Any, Callable, Tuple

POLL_MS = 40  # as the dialog's


def add_session_buttons(frame: ttk.Frame, window: Any) -> Tuple[ttk.Button, ttk.Button]:
    """ "Import masks..." and "Report..." on the main window's Session box. `window`: the main
    window (its `session`, `running`, `log`, `show_error`); nothing happens without a session
    or while a run is going (the trainer reads the masks)."""

    def import_masks() -> None:
        if window.session is None or window.running:
            window.show_error(
                "Open a session, and stop its run, before importing masks into it.", user_error=True, title="Import masks"
            )
            return
        session = window.session

        def done(outcome: Any) -> None:
            window.log.append(
                f"Imported {len(outcome.written)} masks into {session.masks_dir} ({len(outcome.kept)} hand-painted kept)"
            )

        from ui.windows.mask_import_dialog import MaskImportDialog  # its formats load torch

        window.mask_import_dialog = MaskImportDialog(window, session.train_dir, session.masks, on_done=done)

    def report() -> None:
        if window.session is None:
            window.show_error("Open a session first: the report tells its story.", user_error=True, title="Report")
            return
        session = window.session
        path = filedialog.asksaveasfilename(
            parent=window,
            title="Save the session report",
            initialdir=str(session.folder),
            initialfile="report.html",
            defaultextension=".html",
        )
        if not path:
            return
        from app.report import write_report  # imported here, in the main thread: it loads torch

        results: "queue.Queue[Any]" = queue.Queue()
        window.log.append(f"Writing the session report to {path}...")
        work = lambda: results.put(_report_or_error(write_report, session.folder, path))  # noqa: E731
        threading.Thread(target=work, name="report", daemon=True).start()

        def poll() -> None:
            try:
                outcome = results.get_nowait()
            except queue.Empty:
                window.after(POLL_MS * 5, poll)
                return
            if isinstance(outcome, Exception):
                window.show_error(
                    f"The report could not be written: {outcome}", user_error=isinstance(outcome, ValueError), title="Report"
                )
            else:
                window.log.append(f"Report written: {outcome}")
                webbrowser.open(Path(outcome).resolve().as_uri())

        window.after(POLL_MS * 5, poll)

    import_button = ttk.Button(frame, text="Import masks...", command=import_masks)
    import_button.pack(side="left")  # under "Open session...", not 6 px right of it
    report_button = ttk.Button(frame, text="Report...", command=report)
    report_button.pack(side="left", padx=(6, 0))
    return import_button, report_button


def _report_or_error(write_report: Callable[[Path, str], Any], folder: Path, path: str) -> Any:
    try:
        return write_report(folder, path)
    except Exception as error:  # noqa: BLE001 -- shown in a dialog, never a dead thread
        return error

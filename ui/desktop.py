"""Start the desktop app: a Tk root with the main window, until the window is closed.

`python main.py` (or `python main.py app --data DIR --session DIR`) ends up here:
`main.py` hands the parsed `app` command to `open_desktop_app`. New sessions go under `app.run.session.default_sessions_root()`
(`~/.local/share/saliency-steering/sessions/` unless `$XDG_DATA_HOME` says otherwise).
"""

from __future__ import annotations

import logging
import tkinter as tk
from typing import Optional

from ui.helpers.window_geometry import GeometryStore
from ui.main_window.window import MainWindow
from ui.tk_support.window_placement import fit_minsize, place

log = logging.getLogger(__name__)

DEFAULT_GEOMETRY = "1400x860"  # wanted size; smaller screens get what fits (remembered after)
# How long after the window's first draw the app opens its session: reading the checkpoint loads
# torch (seconds), which the window must not wait for; the delay lets the first draw reach the screen.
OPEN_AFTER_SHOW_MS = 100


def _tune_fonts(root: tk.Tk) -> None:
    """Slightly larger default fonts: Tk's 9 pt default is small on today's screens."""
    from tkinter import font

    for name in ("TkDefaultFont", "TkTextFont", "TkMenuFont", "TkHeadingFont"):
        try:
            font.nametofont(name, root=root).configure(size=10)
        except tk.TclError:
            pass


def build_app(
    data_dir: Optional[str] = None, session_dir: Optional[str] = None, *, sessions_root: Optional[str] = None, **options
) -> MainWindow:
    """Make the Tk root and the main window without entering the main loop (tests, scripts)."""
    root = tk.Tk()
    store = options.pop("geometry_store", None) or GeometryStore()
    width, height = (int(v) for v in DEFAULT_GEOMETRY.split("x"))
    place(root, "main", width, height, store)  # fitted to a 1280 x 720 screen too
    fit_minsize(root, 900, 560)
    _tune_fonts(root)
    try:
        from tkinter import ttk

        style = ttk.Style(root)
        if "clam" in style.theme_names():
            style.theme_use("clam")
    except tk.TclError:
        pass
    return MainWindow(
        root,
        data_dir=data_dir,
        session_dir=session_dir,
        sessions_root=sessions_root,
        geometry_store=store,
        **{"reopen_last": True, **options},
    )


def run_app(
    data_dir: Optional[str] = None,
    session_dir: Optional[str] = None,
    *,
    sessions_root: Optional[str] = None,
    demo_shortcut: str = "corner",
) -> int:
    """Open the main window and run the Tk main loop; returns the exit code (0).

    `data_dir`: image folder root/<class>/<image> shown in the form (blank: demo data).
    `session_dir`: a session folder to reopen (its settings, plots and masks; Train resumes it).
    `sessions_root`: where new sessions go (default: `app.run.session.default_sessions_root()`).
    `demo_shortcut`: the built-in demo a blank data folder means (`datasets.demo.SHORTCUTS`).
    """
    # The window first, torch-free; the session (given, or the last one) right after it shows.
    window = build_app(
        None if session_dir else data_dir, sessions_root=sessions_root, demo_shortcut=demo_shortcut, reopen_last=False
    )
    window.root.update()
    window.after(OPEN_AFTER_SHOW_MS, lambda: _open_first_session(window, session_dir, data_dir))
    window.mainloop()
    failed = window.last_failure is not None and not window.last_failure.user_error
    return 1 if failed else 0


def _open_first_session(window: MainWindow, session_dir: Optional[str], data_dir: Optional[str]) -> None:
    """What `MainWindow(session_dir=..., reopen_last=True)` opens, once the window is on screen."""
    if window.running or window.session is not None:  # the user was quicker
        return
    if session_dir:
        window.open_session(session_dir)
    elif not data_dir:
        window.reopen_last_session()


def open_desktop_app(args) -> int:
    """The `app` command (parsed by `app.cli`): open the main window; a UserError when this
    Python has no Tk or the machine no screen."""
    from app.errors import UserError

    try:
        return run_app(data_dir=args.data, session_dir=args.session, demo_shortcut=args.demo)
    except tk.TclError as error:
        if "display" in str(error).lower():
            raise UserError(
                f"the desktop app needs a screen ({error}); on a headless machine use the command line instead: main.py --help"
            ) from error
        raise

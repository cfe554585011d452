"""Run a real Tk main loop until a condition holds: how the GUI tests wait for the app."""

import time


def wait_until(widget, predicate, timeout=60.0, what="the app"):
    """Run the real Tk main loop until `predicate()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    pending = []

    def poll():
        pending.clear()
        if predicate() or time.monotonic() > deadline:
            widget.quit()
        else:
            pending.append(widget.after(10, poll))

    if not predicate():
        pending.append(widget.after(10, poll))
        widget.mainloop()
        for after_id in pending:  # the loop can also end because the window was destroyed
            try:
                widget.tk.call("after", "cancel", after_id)
            except Exception:  # noqa: BLE001 -- the interpreter is gone: so is the timer
                pass
    if not predicate():
        raise AssertionError(f"timed out waiting for {what}")

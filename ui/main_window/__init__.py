"""The main window: its widget skin (`window`, with the Train / session actions and the
engine's events in modules of their own) and the pure parts it applies (run controller, run
controls, round windows, demo preparation), its settings form and trust banner.

No imports here, so `import ui.main_window.run_controller` stays free of tkinter.
"""

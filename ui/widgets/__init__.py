"""Widgets the windows are built from: live plots, progress bars, the log pane, a scrolling
frame.
"""

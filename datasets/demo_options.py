"""The demo's shortcut kinds, torch- and numpy-free, so the command line lists them without
loading the demo generator (`datasets.demo` imports numpy and Pillow)."""

SHORTCUTS = ("corner", "moving", "shape")  # where and what the shortcut is (datasets/demo.py's docstring)

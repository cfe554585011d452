"""The brush window and what it paints with: the round's masks and undo (`state`), the
picture (`render`), the tools' rules (`tools`), stroke rasterisation (`strokes`), the
background writer (`autosave`) and the "Apply to..." panel.

No imports here, so the pure modules load without tkinter.
"""

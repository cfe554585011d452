"""Pure helpers the windows draw and decide with (no tkinter, tested without a display):
geometry, overlays, wording, the gallery's filter, the content plan, a round's cost, window
sizes.
"""

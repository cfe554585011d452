"""Tk plumbing shared by the windows: the event pump (engine thread -> Tk thread), teardown
that tolerates widgets already gone, and window placement.
"""

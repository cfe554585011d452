"""The other windows and dialogs: chooser, gallery, discovery, reasonability, content
preview, mask import, recent sessions, and the small dialogs.
"""

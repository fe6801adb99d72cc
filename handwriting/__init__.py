"""Handwriting in: a printable template of writing cells, and a reader that cuts scans or photos
of the filled sheets into clean glyph images (sheet.py: the geometry both share)."""

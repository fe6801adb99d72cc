"""Learned styles to installable fonts: tracing, font building, verification, specimens."""

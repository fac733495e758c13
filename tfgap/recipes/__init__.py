"""Thin entry points: python -m tfgap.recipes.<name>."""

"""Diagnostics of the generalization gap."""

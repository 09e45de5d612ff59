"""Measurement on real hardware: timing, roofline, cross-checks (no rendering)."""

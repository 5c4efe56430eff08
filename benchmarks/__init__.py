"""Benchmarks of allocopt (scripts, not tests)."""

"""Synthetic data generators for tests and benchmarks (outside the library)."""

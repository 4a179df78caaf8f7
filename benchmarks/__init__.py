"""Benchmarks: scripts that measure and write JSON + Markdown under benchmarks/results/."""

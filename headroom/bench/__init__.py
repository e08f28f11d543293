"""Benchmarks behind `headroom bench`: the yardstick the targets are measured with."""

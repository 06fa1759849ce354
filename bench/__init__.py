"""Benchmarks: `make bench` runs `python -m bench.webhook` and `python -m bench.machine`."""

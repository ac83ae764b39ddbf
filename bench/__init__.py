"""Benchmarks: ``make bench`` (``python -m bench``) runs every ``bench/bench_*.py``.

Each benchmark module has ``run() -> dict`` and returns its figures: nested dicts whose leaves
are numbers or short strings, e.g. ``{"sqlite": {"api list": {"requests/s": 812.0, ...}}}``.
The runner prints them; nothing here runs in ``make test`` (pytest collects ``tests/`` only).
"""

"""Discover and run the benchmarks: ``python -m bench [--only NAME ...] [--list]``."""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
from pathlib import Path
from typing import Any

PREFIX = "bench_"


def discover() -> dict[str, str]:
    """Benchmark short names (``catalog``) -> module names (``bench.bench_catalog``)."""
    here = str(Path(__file__).resolve().parent)
    return {
        info.name[len(PREFIX):]: f"bench.{info.name}"
        for info in sorted(pkgutil.iter_modules([here]), key=lambda i: i.name)
        if info.name.startswith(PREFIX)
    }


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def _is_table(value: dict) -> bool:
    """A dict of dicts of scalars prints as a table: one row per key."""
    return bool(value) and all(
        isinstance(row, dict) and not any(isinstance(v, dict) for v in row.values())
        for row in value.values()
    )


def print_table(rows: dict[str, dict[str, Any]], indent: str) -> None:
    columns = list(dict.fromkeys(key for row in rows.values() for key in row))
    cells = [[name] + [_format(row.get(col, "")) for col in columns] for name, row in rows.items()]
    header = [""] + columns
    widths = [max(len(str(line[i])) for line in [header] + cells) for i in range(len(header))]
    print(indent + "  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in
                             enumerate(zip(header, widths))))
    for line in cells:
        print(indent + "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in
                                 enumerate(zip(line, widths))))


def print_results(results: dict[str, Any], indent: str = "  ") -> None:
    """Print nested results: scalars as ``key: value``, dicts of rows as tables."""
    for key, value in results.items():
        if isinstance(value, dict) and _is_table(value):
            print(f"{indent}{key}:")
            print_table(value, indent + "  ")
        elif isinstance(value, dict):
            print(f"{indent}{key}:")
            print_results(value, indent + "  ")
        else:
            print(f"{indent}{key}: {_format(value)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this benchmark (repeatable), e.g. --only catalog")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    found = discover()
    if args.list:
        print("\n".join(found))
        return 0
    wanted = [name.removeprefix(PREFIX) for name in args.only or found]
    unknown = [name for name in wanted if name not in found]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(found)}")
    for name in wanted:
        print(f"== {name}")
        started = time.perf_counter()
        results = importlib.import_module(found[name]).run()
        print_results(results)
        print(f"  (took {time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

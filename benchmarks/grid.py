"""The grid a benchmark measures: (documents per request, clients) cells, the requests each cell
sends in each round, and interleaved rounds over the variants, so that a slow spell of a shared
machine hits all of them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Workload:
    """The (N, clients) grid and the requests each cell sends in each round."""

    grid: list[tuple[int, int]]
    pool: dict[int, list]
    pairs_per_cell: int

    @classmethod
    def plan(cls, quick: bool, data: Path | None, rounds: int, grid: list[tuple[int, int]] | None = None) -> Workload:
        from benchmarks.workload import load_requests

        if grid is None:  # 16 clients x 1000 documents would queue for minutes on a small machine.
            grid = [(100, c) for c in (1, 4, 16)]
            if not quick:
                grid = [(10, 1), (10, 4), (10, 16), *grid, (1000, 1), (1000, 4)]
        workload = cls(grid, {}, 200 if quick else 600)
        for n in sorted({n for n, _ in grid}):
            most = max(workload.count(n, c) for m, c in grid if m == n)
            workload.pool[n] = load_requests(data, n, most * rounds)
        return workload

    def count(self, n: int, clients: int) -> int:
        return clients * max(1, math.ceil(self.pairs_per_cell / n / clients))

    def requests_for(self, n: int, clients: int, round_index: int) -> list:
        count = self.count(n, clients)
        return self.pool[n][round_index * count : (round_index + 1) * count] or self.pool[n][:count]

    @property
    def sample(self) -> list:
        return self.pool[100 if 100 in self.pool else min(self.pool)]


def never(n: int, clients: int) -> bool:
    """A variant's skip rule when it measures every cell."""
    return False


def measure_grid(variants: dict[str, tuple], workload: Workload, rounds: int) -> list:
    """Interleaved rounds over every (N, clients) cell and variant; returns the cells measured."""
    from benchmarks.harness import Cell, measure

    cells = {(name, n, c): Cell(name, n, c) for name in variants for n, c in workload.grid}
    names = list(variants)
    for round_index in range(rounds):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        for n, clients in workload.grid:
            for name in order:
                make_scorer, stats_url, skip = variants[name]
                if skip(n, clients):
                    continue
                cell = cells[(name, n, clients)]
                measure(cell, make_scorer, workload.requests_for(n, clients, round_index), clients, stats_url)
                print(
                    f"round {round_index + 1}/{rounds}  N={n:<5} clients={clients:<3} {name:<14} "
                    f"{cell.throughputs[-1]:7.1f} pairs/s  p50 {cell.summary()['p50_ms'] or float('nan'):8.0f} ms  "
                    f"errors {len(cell.errors)}",
                    flush=True,
                )
    return [cell for cell in cells.values() if cell.throughputs]

"""Dependency ordering of components (iterative: a long ``depends_on`` chain is no deeper
for Python than a short one)."""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping, Sequence


def find_cycle(graph: Mapping[str, Sequence[str]]) -> list[str]:
    """A cycle as a closed path (``[a, b, a]``), or ``[]`` when the graph is acyclic."""
    done: set[str] = set()
    for start in sorted(graph):
        if start not in done and (found := _cycle_from(graph, start, done)):
            return found
    return []


def _cycle_from(graph: Mapping[str, Sequence[str]], start: str, done: set[str]) -> list[str]:
    """Depth-first from ``start`` with an explicit stack; the path is the current branch."""
    path = [start]
    on_path = {start}
    branches: list[Iterator[str]] = [iter(graph.get(start, ()))]
    while branches:
        dep = next(branches[-1], None)
        if dep is None:
            branches.pop()
            on_path.discard(node := path.pop())
            done.add(node)
        elif dep in on_path:
            return [*path[path.index(dep) :], dep]
        elif dep not in done:
            path.append(dep)
            on_path.add(dep)
            branches.append(iter(graph.get(dep, ())))
    return []


def topological_order(graph: Mapping[str, Sequence[str]], priority: Mapping[str, int]) -> list[str]:
    """Dependencies first; among ready components, lower ``priority`` value first, then name."""
    known = set(graph)
    waiting = {node: set(deps) & known for node, deps in graph.items()}
    dependents: dict[str, list[str]] = {node: [] for node in graph}
    for node, deps in waiting.items():
        for dep in deps:
            dependents[dep].append(node)
    ready = [(priority.get(n, 9), n) for n, deps in waiting.items() if not deps]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, node = heapq.heappop(ready)
        order.append(node)
        for dependent in dependents[node]:
            waiting[dependent].discard(node)
            if not waiting[dependent]:
                heapq.heappush(ready, (priority.get(dependent, 9), dependent))
    if len(order) < len(graph):
        raise ValueError("dependency cycle")
    return order

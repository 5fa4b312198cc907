"""Dependency ordering of components."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def find_cycle(graph: Mapping[str, Sequence[str]]) -> list[str]:
    """A cycle as a closed path (``[a, b, a]``), or ``[]`` when the graph is acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for dep in graph.get(node, ()):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def topological_order(graph: Mapping[str, Sequence[str]], priority: Mapping[str, int]) -> list[str]:
    """Dependencies first; among ready components, lower ``priority`` value first, then name."""
    remaining = {node: set(deps) & set(graph) for node, deps in graph.items()}
    order: list[str] = []
    while remaining:
        ready = sorted(
            (n for n, deps in remaining.items() if not deps), key=lambda n: (priority.get(n, 9), n)
        )
        if not ready:
            raise ValueError("dependency cycle")
        node = ready[0]
        order.append(node)
        del remaining[node]
        for deps in remaining.values():
            deps.discard(node)
    return order

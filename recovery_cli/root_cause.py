"""Root cause through dependencies: which unhealthy components explain the others.

A root is an unhealthy ("down") component none of whose own dependencies is down; any other
down component is explained by the roots its down dependencies lead to. Pure and iterative
(like ``graph``): a long ``depends_on`` chain is no deeper for Python than a short one."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence


def root_causes(
    graph: Mapping[str, Sequence[str]], down: Collection[str]
) -> dict[str, tuple[str, ...]]:
    """Each down component -> the roots that explain it, sorted; a root -> itself.

    Only down dependencies are followed: a healthy one in between breaks the chain, so what
    depends on it through a healthy component is a root of its own."""
    below = {name: [d for d in graph.get(name, ()) if d in down] for name in down}
    found: dict[str, frozenset[str]] = {}
    for name in sorted(down):
        if name not in found:
            _walk(name, below, found)
    return {name: tuple(sorted(found[name])) for name in down}


def _walk(start: str, below: Mapping[str, Sequence[str]], found: dict[str, frozenset[str]]) -> None:
    """Depth-first from ``start`` with an explicit stack: each component's roots are known
    once its down dependencies' are (a cycle, which the config refuses, adds nothing)."""
    on_path = {start}
    branches: list[tuple[str, Iterator[str]]] = [(start, iter(below[start]))]
    while branches:
        node, deps = branches[-1]
        dep = next(deps, None)
        if dep is None:
            branches.pop()
            on_path.discard(node)
            under = [found.get(d, frozenset()) for d in below[node]]
            found[node] = frozenset().union(*under) if below[node] else frozenset({node})
        elif dep not in found and dep not in on_path:
            on_path.add(dep)
            branches.append((dep, iter(below[dep])))


def explained(causes: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """Each root that explains another down component -> those components, sorted."""
    found: dict[str, list[str]] = {}
    for name, roots in causes.items():
        for root in roots:
            if root != name:
                found.setdefault(root, []).append(name)
    return {root: tuple(sorted(names)) for root, names in found.items()}


def depended_on(graph: Mapping[str, Sequence[str]]) -> set[str]:
    """The components at least one other component depends on."""
    return {dep for deps in graph.values() for dep in deps}


def label(roots: Sequence[str]) -> str:
    """Several roots in one alert label or audit field: sorted, comma-separated."""
    return ",".join(sorted(roots))

"""The root cause through dependencies, as a pure function of the graph and the down set."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from recovery_cli.root_cause import depended_on, explained, label, root_causes
from tests.support.cli import Workspace, base_config, command_component

# the shipped shape: everything on the host, openwebui also on redis and chromadb
SHIPPED = {
    "system": [],
    "redis": ["system"],
    "chromadb": ["system"],
    "openwebui": ["system", "redis", "chromadb"],
}


def test_the_host_down_explains_everything_down_above_it() -> None:
    causes = root_causes(SHIPPED, {"system", "redis", "chromadb"})
    assert causes == {"system": ("system",), "redis": ("system",), "chromadb": ("system",)}
    assert explained(causes) == {"system": ("chromadb", "redis")}


def test_a_healthy_component_in_between_breaks_the_chain() -> None:
    """openwebui is down, its direct dependencies are up: it is a root of its own even
    though system, below them, is down."""
    graph = {"system": [], "redis": ["system"], "openwebui": ["redis"]}
    causes = root_causes(graph, {"system", "openwebui"})
    assert causes == {"system": ("system",), "openwebui": ("openwebui",)}
    assert explained(causes) == {}


def test_a_dependent_of_two_roots_names_both_sorted_through_a_down_middle() -> None:
    graph = {"system": [], "cache": [], "redis": ["system"], "app": ["redis", "cache"]}
    causes = root_causes(graph, {"system", "cache", "redis", "app"})
    assert causes["app"] == ("cache", "system")  # via redis, which is not a root itself
    assert causes["redis"] == ("system",)
    assert label(causes["app"]) == "cache,system"
    assert explained(causes) == {"cache": ("app",), "system": ("app", "redis")}


def test_nothing_down_nothing_named_and_who_is_depended_on() -> None:
    assert root_causes(SHIPPED, set()) == {}
    assert depended_on(SHIPPED) == {"system", "redis", "chromadb"}


def test_a_long_chain_is_walked_without_recursion() -> None:
    names = [f"c{i}" for i in range(5000)]
    graph = {name: names[i - 1 : i] for i, name in enumerate(names)}
    causes = root_causes(graph, set(names))
    assert causes["c4999"] == ("c0",)


@st.composite
def graphs_and_down(draw: st.DrawFn) -> tuple[dict[str, list[str]], set[str]]:
    """An acyclic graph (a component depends only on earlier ones, as the config requires)
    and any subset of it down."""
    size = draw(st.integers(1, 12))
    names = [f"n{i}" for i in range(size)]
    graph = {
        name: sorted(draw(st.sets(st.sampled_from(names[:i]))) if i else [])
        for i, name in enumerate(names)
    }
    return graph, draw(st.sets(st.sampled_from(names)))


def down_below(graph: dict[str, list[str]], down: set[str], name: str) -> set[str]:
    """The transitive down dependencies, by a separate walk (recursion is fine at 12)."""
    found: set[str] = set()
    for dep in graph[name]:
        if dep in down:
            found |= {dep, *down_below(graph, down, dep)}
    return found


@settings(max_examples=300, deadline=None)
@given(graphs_and_down())
def test_every_down_component_is_a_root_or_explained_by_one(
    case: tuple[dict[str, list[str]], set[str]],
) -> None:
    graph, down = case
    causes = root_causes(graph, down)
    assert set(causes) == down
    for name, roots in causes.items():
        below = down_below(graph, down, name)
        assert roots, name
        assert list(roots) == sorted(set(roots))
        if not below:
            assert roots == (name,), "a root names itself"
            continue
        assert set(roots) <= below, "a dependent's roots are among its down dependencies"
        for root in roots:
            assert not any(d in down for d in graph[root]), "a root has no down dependency"
        # and no root below it is left out
        assert {d for d in below if not any(x in down for x in graph[d])} == set(roots)


def host_cache_app_down(lone: bool = False) -> dict[str, Any]:
    """``app`` depends on ``cache``, which depends on ``host``, all down (real ``command``
    components whose probes fail); with ``lone``, one more down that depends on nothing."""
    down = command_component(["false"], {"fix": ["false"]})
    components = {
        "host": down,
        "cache": {**down, "depends_on": ["host"]},
        "app": {**down, "depends_on": ["cache"]},
    }
    return components | ({"lone": down} if lone else {})


def test_a_transitive_root_is_named_in_the_audit_and_by_status_without_probing(
    ws: Workspace,
) -> None:
    """``app`` depends on ``cache``, which depends on ``host``: all three down, plus ``lone``
    (down, depending on nothing). Real ``command`` components whose probes fail."""
    ws.write_config(base_config(host_cache_app_down(lone=True)))
    run = ws.run("recover")
    assert run.returncode in (1, 3), run.stdout + run.stderr

    [app] = ws.events("blocked", "app")
    [cache] = ws.events("blocked", "cache")
    assert app["root_cause"] == cache["root_cause"] == "host"
    assert app["detail"] == "dependency not healthy: cache (root cause: host)"
    assert cache["detail"] == "dependency not healthy: host"
    assert not ws.events("blocked", "host") and not ws.events("blocked", "lone")

    for argv in (["status", "--json"], ["status", "--json", "--no-probe"]):
        shown = ws.run(*argv)
        rows = {r["component"]: r for r in json.loads(shown.stdout)}
        causes = {name: (row["root_cause"], row["root_of"]) for name, row in rows.items()}
        assert causes == {
            "host": (["host"], ["app", "cache"]),
            "cache": (["host"], []),
            "app": (["host"], []),
            "lone": ([], []),  # down, but it explains nothing and nothing explains it
        }, argv


def test_status_without_probing_names_the_root_a_run_of_one_component_found(
    ws: Workspace,
) -> None:
    """``recover app`` alone probes ``cache`` and ``host`` but leaves them no lifecycle: the
    root ``status --no-probe`` shows is the one that run stored for ``app``."""
    ws.write_config(base_config(host_cache_app_down()))
    run = ws.run("recover", "app", "--json")
    assert run.returncode == 3
    assert [r["root_cause"] for r in json.loads(run.stdout)] == [["host"]]
    [blocked] = ws.events("blocked", "app")
    assert blocked["root_cause"] == "host"

    shown = ws.run("status", "--json", "--no-probe")

    rows = {r["component"]: r for r in json.loads(shown.stdout)}
    assert (rows["app"]["root_cause"], rows["host"]["root_of"]) == (["host"], ["app"])
    assert rows["app"]["next_step"] == "waits for its root cause host: recovery recover host"


def test_a_cycle_which_the_config_refuses_ends_the_walk() -> None:
    causes = root_causes({"a": ["b"], "b": ["a"], "c": ["a"]}, {"a", "b", "c"})
    assert causes == {"a": (), "b": (), "c": ()}  # no root among them, and no endless loop

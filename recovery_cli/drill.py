"""``recovery test``: prove the config and every strategy's preconditions, changing nothing.

With ``live``, also run each component's chain for real (against a staging target)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from xml.etree import ElementTree

from recovery_cli.config import Config
from recovery_cli.handler_calls import Components, Crashed, TimedOut, call_with_timeout
from recovery_cli.handlers.base import Check
from recovery_cli.registry import HandlerUnavailable
from recovery_cli.store import Store

PREFLIGHT_TIMEOUT = 30.0


# what a service control check says when the service is not installed on this host
NOT_INSTALLED = (
    "has not been booted with systemd",
    "could not be found",
    "not-found",
    "unit_not_found",
    "container_not_found",
    "No such container",
    "engine_unreachable",
)
# what a reachability check says when nothing listens
NOTHING_LISTENS = ("Connection refused", "Errno 111", "connection_failed")


@dataclass(frozen=True)
class DrillCase:
    component: str
    name: str
    ok: bool
    detail: str
    skipped: bool = False  # not on this host: neither passed nor failed

    @property
    def failed(self) -> bool:
        return not self.ok and not self.skipped


def run_drill(
    config: Config, components: Components, state_dir: Path, store: Store | None = None
) -> list[DrillCase]:
    cases = [DrillCase("-", "config: valid", True, f"{len(config.components)} components")]
    cases.append(_state_dir_case(state_dir))
    if store is not None and store.backend_name() != "file":
        cases.append(_backend_case(store))
    for name in config.components:
        cases += _component_cases(config, components, name)
    return cases


def _state_dir_case(state_dir: Path) -> DrillCase:
    writable = os.access(state_dir, os.W_OK | os.X_OK)
    detail = str(state_dir) if writable else f"{state_dir} is not writable"
    return DrillCase("-", "state dir: writable", writable, detail)


def _backend_case(store: Store) -> DrillCase:
    """The shared state database answers, with its schema migrated."""
    problem = store.backend_problem()
    detail = problem or f"{store.backend_name()} answers"
    return DrillCase("-", f"state backend: {store.backend_name()}", problem is None, detail)


def _component_cases(config: Config, components: Components, name: str) -> list[DrillCase]:
    try:
        handler = components.handler(name)
    except HandlerUnavailable as exc:
        return [DrillCase(name, "handler: available", False, str(exc))]
    cases = [DrillCase(name, "handler: available", True, config.components[name].kind)]
    secrets = [_secret_case(name, key, var, components) for key, var in _env_settings(config, name)]
    cases += secrets
    service = components.service(name)
    if service is not None:
        cases += [
            DrillCase(name, f"service: {c.name}", c.ok, c.detail) for c in service.preflight()
        ]
    for strategy in _strategies_in_use(config, name):
        outcome = call_with_timeout(lambda s=strategy: handler.preflight(s), PREFLIGHT_TIMEOUT)  # type: ignore[misc]
        cases += [
            DrillCase(name, f"{strategy}: {c.name}", c.ok, c.detail) for c in _checks(outcome)
        ]
    return _skip_if_not_here(_without_judged_secrets(cases, secrets))


def _without_judged_secrets(cases: list[DrillCase], secrets: list[DrillCase]) -> list[DrillCase]:
    """A secret the kind checks itself (a preflight check named after it: ``password`` for
    ``password_env``) is the kind's to judge (an optional password passes when the server
    asks for none); the generic presence case is dropped for it."""
    judged = {c.name.split(": ", 1)[-1] for c in cases if c not in secrets}
    return [
        c
        for c in cases
        if c not in secrets
        or c.name.removeprefix("credentials: ").removesuffix("_env") not in judged
    ]


def _skip_if_not_here(cases: list[DrillCase]) -> list[DrillCase]:
    """A component whose service is not installed here (its service control says so) and
    whose server nothing listens for is not on this host: its failing checks are skipped,
    with why. Either sign alone is a broken precondition and fails."""
    absent = next(
        (
            c.detail.splitlines()[0]
            for c in cases
            if c.name.startswith("service: ") and not c.ok and _says(c.detail, NOT_INSTALLED)
        ),
        None,
    )
    unreachable = any(not c.ok and _says(c.detail, NOTHING_LISTENS) for c in cases)
    if absent is None or not unreachable:
        return cases
    return [c if c.ok else replace(c, skipped=True, detail=_not_here(absent, c)) for c in cases]


def _not_here(absent: str, case: DrillCase) -> str:
    if case.detail.startswith(absent):
        return f"not on this host: {case.detail}"
    return f"not on this host ({absent}): {case.detail}"


def _says(detail: str, markers: tuple[str, ...]) -> bool:
    return any(marker in detail for marker in markers)


def _checks(outcome: list[Check] | TimedOut | Crashed) -> list[Check]:
    if isinstance(outcome, TimedOut):
        return [Check("preflight", False, f"did not finish within {outcome.seconds:g}s")]
    if isinstance(outcome, Crashed):
        return [Check("preflight", False, f"{type(outcome.error).__name__}: {outcome.error}")]
    return outcome


def _env_settings(config: Config, name: str) -> list[tuple[str, str]]:
    settings = config.components[name].settings
    return [(k, str(v)) for k, v in settings.items() if k.endswith("_env") and v]


def _secret_case(name: str, key: str, var: str, components: Components) -> DrillCase:
    present = bool(components.env.environ.get(var))
    detail = f"${var} is set" if present else f"${var} is not set"
    return DrillCase(name, f"credentials: {key}", present, detail)


def _strategies_in_use(config: Config, name: str) -> list[str]:
    component = config.components[name]
    seen: dict[str, None] = dict.fromkeys(component.chain)
    for chain in component.on_failure.values():
        seen.update(dict.fromkeys(chain))
    return list(seen)


def junit_xml(cases: list[DrillCase]) -> bytes:
    suites = ElementTree.Element("testsuites", name="recovery test")
    by_component: dict[str, list[DrillCase]] = {}
    for case in cases:
        by_component.setdefault(case.component, []).append(case)
    for component, group in by_component.items():
        suite = ElementTree.SubElement(
            suites,
            "testsuite",
            name=component,
            tests=str(len(group)),
            failures=str(sum(c.failed for c in group)),
            errors="0",
            skipped=str(sum(c.skipped for c in group)),
        )
        for case in group:
            element = ElementTree.SubElement(
                suite, "testcase", classname=f"recovery.{component}", name=case.name
            )
            if case.skipped:
                ElementTree.SubElement(element, "skipped", message=case.detail)
            elif not case.ok:
                ElementTree.SubElement(element, "failure", message=case.detail).text = case.detail
            else:
                ElementTree.SubElement(element, "system-out").text = case.detail
    return bytes(ElementTree.tostring(suites, encoding="utf-8", xml_declaration=True))

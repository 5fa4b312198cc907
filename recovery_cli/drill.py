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
    checks = [("handler: available", Check("handler", True, config.components[name].kind))]
    if not handler.judges_own_secrets:
        checks += [_secret_check(key, var, components) for key, var in _env_settings(config, name)]
    service = components.service(name)
    if service is not None:
        checks += [(f"service: {c.name}", c) for c in service.preflight()]
    for strategy in _strategies_in_use(config, name):
        outcome = call_with_timeout(lambda s=strategy: handler.preflight(s), PREFLIGHT_TIMEOUT)  # type: ignore[misc]
        checks += [(f"{strategy}: {c.name}", c) for c in _checks(outcome)]
    return _judged(name, checks)


def _judged(component: str, checks: list[tuple[str, Check]]) -> list[DrillCase]:
    """A component is on this host when any check found it (a loaded unit or container, a
    server that answered, its data directory). If none did, a failed check that failed only
    for want of the service (``found=False``) is skipped, with why; every other failure
    fails, here or not (a config value, the tool's own files)."""
    absent = None if any(c.found for _, c in checks) else _why_absent(checks)
    return [_case(component, label, check, absent) for label, check in checks]


def _why_absent(checks: list[tuple[str, Check]]) -> str | None:
    """The first sign of absence, the service control's before the strategies'."""
    signs = [(not label.startswith("service: "), c.detail) for label, c in checks if _absent(c)]
    return min(signs)[1].splitlines()[0] if signs else None


def _absent(check: Check) -> bool:
    return not check.ok and check.found is False


def _case(component: str, label: str, check: Check, absent: str | None) -> DrillCase:
    if absent is None or not _absent(check):
        return DrillCase(component, label, check.ok, check.detail)
    why = "" if check.detail.startswith(absent) else f" ({absent})"
    return DrillCase(component, label, False, f"not on this host{why}: {check.detail}", True)


def fail_skips(cases: list[DrillCase]) -> list[DrillCase]:
    """``--strict``: a host that must have every service fails where one is not here."""
    return [replace(c, skipped=False) if c.skipped else c for c in cases]


def summary(cases: list[DrillCase]) -> str:
    failed = sum(c.failed for c in cases)
    skipped = sum(c.skipped for c in cases)
    return f"{len(cases) - failed - skipped} passed, {skipped} skipped, {failed} failed"


def _checks(outcome: list[Check] | TimedOut | Crashed) -> list[Check]:
    if isinstance(outcome, TimedOut):
        return [Check("preflight", False, f"did not finish within {outcome.seconds:g}s")]
    if isinstance(outcome, Crashed):
        return [Check("preflight", False, f"{type(outcome.error).__name__}: {outcome.error}")]
    return outcome


def _env_settings(config: Config, name: str) -> list[tuple[str, str]]:
    settings = config.components[name].settings
    return [(k, str(v)) for k, v in settings.items() if k.endswith("_env") and v]


def _secret_check(key: str, var: str, components: Components) -> tuple[str, Check]:
    """A kind that does not judge its own secrets needs each one set."""
    present = bool(components.env.environ.get(var))
    detail = f"${var} is set" if present else f"${var} is not set"
    return f"credentials: {key}", Check(key, present, detail)


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

"""The ``command`` kind's settings and strategy params: pydantic models, checked at config
load time (cheap, no I/O). Its strategies are whatever the component declares, so every
declared strategy's params are a ``CommandParams``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import ConfigDict

from recovery_cli.handlers.settings_models import (
    MAX_SECONDS,
    Params,
    Problem,
    SettingsModel,
    argv,
    kind_validator,
    number,
    required,
)

# present, a timeout; null is refused (it is no default)
Timeout = Annotated[float | None, number(0, MAX_SECONDS, above=True)]


class CommandSettings(SettingsModel):
    model_config = ConfigDict(extra="ignore")  # refused below, but *_env

    probe: Annotated[tuple[str, ...], argv("must be a non-empty argv list of strings")] = required()
    probe_timeout_seconds: Timeout = None  # none: the core's probe timeout

    @classmethod
    def cross_checks(cls, data: Mapping[Any, Any]) -> list[Problem]:
        # *_env: secrets the commands read, redacted everywhere
        unknown = set(data) - set(cls.model_fields)
        return [
            ((key,), "unknown key")
            for key in sorted(unknown, key=str)
            if not str(key).endswith("_env")
        ]


class CommandParams(Params):
    command: Annotated[tuple[str, ...], argv("must be a non-empty argv list")] = required()
    timeout_seconds: Timeout = None  # none: the step's timeout


# every problem with a command component's settings and each declared strategy's params
validate = kind_validator(CommandSettings, {}, CommandParams)

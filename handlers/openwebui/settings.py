"""The ``settings`` and strategy ``params`` of a ``kind: openwebui`` component: pydantic
models, checked at config load time (cheap, no I/O).

Keys the models do not know are ignored here, not refused: this kind never refused them,
so a config that loaded before still loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import PlainValidator

from recovery_cli.handlers.base import SettingsError
from recovery_cli.handlers.settings_models import (
    NULL_IS_DEFAULT,
    Flag,
    Params,
    SettingsModel,
    invalid,
    kind_validator,
    non_empty,
    number,
    one_of,
    required,
    rule,
    text_list,
)

BANNER_TYPES = ("info", "success", "warning", "error")
MAX_SIGNINS_CAP = 15  # the server allows 15 sign-ins per email in 3 minutes
DEFAULT_MAX_SIGNINS = 5  # ours: a third of that, so a person can still sign in
DEFAULT_BANNER_TITLE = "Degraded service"
DEFAULT_BANNER = "Chat is degraded: a model backend is unavailable. The team is on it."

EnvName = Annotated[str, non_empty("must name an environment variable")] | None
ModelId = Annotated[str, non_empty("must be a model id")] | None
ModelIds = Annotated[tuple[str, ...], text_list("must be a list of model ids"), NULL_IS_DEFAULT]
Text = Annotated[str, rule(lambda v: isinstance(v, str), "must be text")]


def _server_url(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise invalid("needs an http:// or https:// URL of the OpenWebUI server")
    return value


class OpenWebUISettings(SettingsModel):
    unknown_key = "unknown setting for kind openwebui"

    url: Annotated[str, PlainValidator(_server_url)] = required()
    api_key_env: EnvName = None
    email_env: EnvName = None
    password_env: EnvName = None
    required_models: ModelIds = ()
    chat_smoke_test: Flag = False
    smoke_model: ModelId = None
    refresh_models: Flag = True
    verify_tls: Flag = True


class TokenRefreshParams(Params):
    max_signins_per_window: Annotated[
        int, number(1, MAX_SIGNINS_CAP, whole=True), NULL_IS_DEFAULT
    ] = DEFAULT_MAX_SIGNINS


class ModelFailoverParams(Params):
    fallback_model: ModelId = None
    fallback_models: ModelIds = ()
    verify_chat: Flag = True

    @property
    def candidates(self) -> tuple[str, ...]:
        """The models to fail over to, in order: ``fallback_model`` first."""
        first = (self.fallback_model,) if self.fallback_model else ()
        return first + self.fallback_models


class GracefulDegradationParams(Params):
    banner_type: Annotated[str, one_of(BANNER_TYPES)] = "warning"
    banner_title: Text = DEFAULT_BANNER_TITLE
    banner_content: Text = DEFAULT_BANNER
    disable_failing_connections: Flag = True


class RestoreConfigParams(Params):
    verify_chat: Flag = True
    # put back also the keys a person changed since the recovery did (their value is lost)
    override_conflicts: Flag = False


PARAMS: dict[str, type[SettingsModel]] = {
    "token_refresh": TokenRefreshParams,
    "model_failover": ModelFailoverParams,
    "graceful_degradation": GracefulDegradationParams,
    "restore_config": RestoreConfigParams,
}


# every problem with a component's settings and its strategies' params
validate = kind_validator(OpenWebUISettings, PARAMS)


def warnings(
    settings: Mapping[str, Any], params: Mapping[str, Mapping[str, Any]]
) -> list[SettingsError]:
    """A config that loads but cannot work as meant: ``required_models`` naming a model
    that ``model_failover`` does not fail over to. In the outage failover is for, that
    model's backend is down, so it drops out of the refreshed model list and the probe keeps
    failing after a failover that worked: the incident can never end."""
    if validate(settings, params):
        return []  # the config check reports those; no second guess on a broken config
    required = OpenWebUISettings.model_validate(settings).required_models
    fallbacks = ModelFailoverParams.model_validate(params.get("model_failover") or {}).candidates
    outside = [m for m in required if m not in fallbacks]
    if not (required and fallbacks and outside):
        return []
    message = (
        f"required_models names {', '.join(outside)}, which model_failover does not fail "
        f"over to (fallbacks: {', '.join(fallbacks)}). When that model's backend is down it "
        "drops out of the model list, so the probe fails even after a failover that worked "
        "and the incident never ends. Require only models the fallbacks serve, or leave "
        "required_models empty and rely on chat_smoke_test (it chats through the default "
        "model, which failover changes)"
    )
    return [SettingsError("settings.required_models", message)]

"""The config's JSON Schema, from the same pydantic models that validate it, so an editor
and the tool never disagree about a key."""

from __future__ import annotations

from typing import Any

from recovery_cli import __version__
from recovery_cli.config import Config

SCHEMA_ID = "https://recovery-cli.invalid/schema/recovery_config.json"


def config_schema() -> dict[str, Any]:
    schema = Config.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = f"recovery-cli config (version {__version__})"
    return schema

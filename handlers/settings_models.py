"""Pydantic models of handler ``settings`` and strategy ``params``: the base every kind's
models share, the field rules they are built from, and the one adapter to ``SettingsError``.

The messages are the operator-facing ones (pydantic's own wording never shows), and every
problem is reported at once: a model's checks across fields look at the input as given, so
they show beside the field errors instead of only once every field is valid.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidatorFunctionWrapHandler,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError, PydanticUseDefault

from recovery_cli.handlers.base import SettingsError, StrategyContext, StrategyResult

MAX_SECONDS = 3600  # the longest timeout or wait, as for every timeout in the config
SETTINGS_KEY = "settings"

Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]  # where below the model, what is wrong
M = TypeVar("M", bound=BaseModel)


def invalid(message: str) -> PydanticCustomError:
    """The error a rule raises: ``message`` is shown as it is."""
    return PydanticCustomError("settings", message)


class SettingsModel(BaseModel):
    """Frozen; an unknown key is a problem worded by ``unknown_key``."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    unknown_key: ClassVar[str] = "unknown key"

    @classmethod
    def wrong_type(cls, value: object) -> str:
        """The problem with a value that is no mapping at all."""
        return "must be a mapping"

    @classmethod
    def cross_checks(cls, data: Mapping[Any, Any]) -> list[Problem]:
        """Problems across fields, found on the input as given."""
        return []

    @model_validator(mode="wrap")
    @classmethod
    def _every_problem_at_once(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if isinstance(data, BaseModel):
            return handler(data)
        if not isinstance(data, Mapping):
            raise _invalid_input(cls.__name__, [((), cls.wrong_type(data))], data)
        found: list[Problem] = []
        try:
            model = handler(data)
        except ValidationError as exc:
            found = [(tuple(e["loc"]), cls._own_words(e["type"], e["msg"])) for e in exc.errors()]
        found += cls.cross_checks(data)
        if found:
            raise _invalid_input(cls.__name__, found, data)
        return model

    @classmethod
    def _own_words(cls, error_type: str, message: str) -> str:
        # a nested model has already put its own problems in its own words
        if error_type in ("extra_forbidden", "invalid_key"):  # invalid_key: a key not a string
            return cls.unknown_key
        return message.removeprefix("Value error, ")


class Params(SettingsModel):
    """A strategy's params (on its own: a strategy that takes none)."""

    unknown_key = "unknown parameter"


def _invalid_input(title: str, problems: Sequence[Problem], data: object) -> ValidationError:
    details = [
        InitErrorDetails(type=invalid(message), loc=loc, input=data) for loc, message in problems
    ]
    return ValidationError.from_exception_data(title, details)


# -- the adapter -------------------------------------------------------------------------------


def errors_of(exc: ValidationError, prefix: str) -> list[SettingsError]:
    """One ``SettingsError`` per problem, keyed ``prefix.field.0.subfield``."""
    return [
        SettingsError(".".join([prefix, *map(str, error["loc"])]), error["msg"])
        for error in exc.errors(include_url=False)
    ]


def parse(model: type[M], values: Mapping[str, Any], prefix: str) -> M | list[SettingsError]:
    """``values`` as ``model``, or every problem with them (keyed below ``prefix``)."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        return errors_of(exc, prefix)


def params_key(strategy: str) -> str:
    return f"strategies.{strategy}.params"


H = TypeVar("H")


def takes(
    model: type[M],
) -> Callable[
    [Callable[[H, StrategyContext, M], StrategyResult]],
    Callable[[H, StrategyContext], StrategyResult],
]:
    """A strategy ``f(handler, ctx, params)`` as the ``f(handler, ctx)`` the handler binds:
    the step's params are parsed as ``model`` first (the strategy's name is the function's)."""

    def wrap(
        strategy: Callable[[H, StrategyContext, M], StrategyResult],
    ) -> Callable[[H, StrategyContext], StrategyResult]:
        @functools.wraps(strategy)
        def run(handler: H, ctx: StrategyContext) -> StrategyResult:
            params = step_params(model, strategy.__name__, ctx.params)
            if isinstance(params, StrategyResult):
                return params
            return strategy(handler, ctx, params)

        return run

    return wrap


def step_params(model: type[M], strategy: str, values: Mapping[str, Any]) -> M | StrategyResult:
    """A step's params as ``model``; or, for params the config check never saw (a strategy
    run on its own), the ``invalid_params`` failure naming every problem."""
    parsed = parse(model, values, params_key(strategy))
    if isinstance(parsed, list):
        problems = "; ".join(f"{p.key}: {p.message}" for p in parsed)
        return StrategyResult.failure("invalid_params", problems)
    return parsed


Validator = Callable[[Mapping[str, Any], Mapping[str, Mapping[str, Any]]], list[SettingsError]]


def kind_validator(
    settings_model: type[BaseModel],
    params_models: Mapping[str, type[BaseModel]],
    other_params: type[BaseModel] | None = None,
) -> Validator:
    """A kind's ``validate(settings, params)``: every problem with a component's settings
    and with each strategy's params. A strategy without a model of its own is checked
    against ``other_params``, or not at all (a strategy the kind does not have is the
    core's to report)."""

    def validate(
        settings: Mapping[str, Any], params: Mapping[str, Mapping[str, Any]]
    ) -> list[SettingsError]:
        errors = settings_errors(settings_model, settings, SETTINGS_KEY)
        for strategy, values in params.items():
            model = params_models.get(strategy, other_params)
            if model is not None:
                errors += settings_errors(model, values, params_key(strategy))
        return errors

    return validate


def settings_errors(
    model: type[BaseModel], values: Mapping[str, Any], prefix: str
) -> list[SettingsError]:
    """Every problem with ``values`` as ``model`` (``[]``: none)."""
    parsed = parse(model, values, prefix)
    return parsed if isinstance(parsed, list) else []


# -- rules: each a PlainValidator, so the message is ours and nothing is coerced unasked -------


def required() -> Any:
    """The default of a required field: its absence goes through the field's own rule, which
    words it (pydantic would say "Field required")."""
    return Field(default=None, validate_default=True)


def _default_when_null(value: Any) -> Any:
    if value is None:
        raise PydanticUseDefault()
    return value


# ``key: null`` means the field's default; listed after the rule in ``Annotated``, it runs
# before it (the rule would refuse null)
NULL_IS_DEFAULT = BeforeValidator(_default_when_null)


def rule(
    valid: Callable[[Any], bool], message: str, convert: Callable[[Any], Any] | None = None
) -> PlainValidator:
    """Accept a value when ``valid(value)`` (then ``convert(value)``), else say ``message``."""

    def check(value: Any) -> Any:
        if not valid(value):
            raise invalid(message)
        return value if convert is None else convert(value)

    return PlainValidator(check)


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)  # YAML true is not 1


def number(low: float, high: float, *, above: bool = False, whole: bool = False) -> PlainValidator:
    """A finite number (never true/false) from ``low`` (exclusive when ``above``) to ``high``,
    and a whole one when ``whole``. Every number a handler reads is bounded: an unbounded one
    validates and then crashes (``time.sleep(1e20)``) or waits forever (``.inf``)."""

    def valid(value: Any) -> bool:
        if not is_number(value) or (
            isinstance(value, float) and (whole or not math.isfinite(value))
        ):
            return False
        return bool((low < value if above else low <= value) and value <= high)

    lowest, highest = (str(int(b)) if float(b).is_integer() else str(b) for b in (low, high))
    noun = "a whole number" if whole else "a number"
    span = f"above {lowest} and at most {highest}" if above else f"from {lowest} to {highest}"
    return rule(valid, f"must be {noun} {span}")


def positive_whole(message: str = "must be a positive whole number") -> PlainValidator:
    return rule(lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0, message)


def flag(message: str = "must be true or false") -> PlainValidator:
    return rule(lambda v: isinstance(v, bool), message)


def is_text(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def non_empty(message: str = "must be a non-empty string") -> PlainValidator:
    return rule(is_text, message)


def one_of(choices: Sequence[str], message: str | None = None) -> PlainValidator:
    return rule(lambda v: v in choices, message or f"must be one of {', '.join(choices)}")


def text_list(message: str) -> PlainValidator:
    """A list of non-empty strings, kept as a tuple."""
    return rule(lambda v: isinstance(v, list) and all(map(is_text, v)), message, tuple)


def argv(message: str) -> PlainValidator:
    """A non-empty list of non-empty strings that exec accepts (no NUL inside), as a tuple."""

    def valid(value: Any) -> bool:
        return (
            isinstance(value, list)
            and bool(value)
            and all(is_text(v) and "\x00" not in v for v in value)
        )

    return rule(valid, message, tuple)


PositiveSeconds = Annotated[float, number(0, MAX_SECONDS, above=True)]
Ratio = Annotated[float, number(0, 1, above=True)]
Flag = Annotated[bool, flag()]
PositiveWhole = Annotated[int, positive_whole()]
NonEmptyText = Annotated[str, non_empty()]

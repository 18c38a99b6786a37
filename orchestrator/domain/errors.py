"""Turn validation failures into messages that name the field and what is allowed.

Used by every front end (REST 422s, Slack ephemeral errors, the CLI), so a user
gets the same wording wherever the bad value came from. Pure domain code.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from orchestrator.domain.spec import spec_field_names

if TYPE_CHECKING:
    from orchestrator.domain.spec import JobSpec


@dataclass(frozen=True)
class FieldError:
    """One bad field: its dotted path and what is wrong with it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class SpecError(ValueError):
    """A request that cannot become a job; carries every field error at once."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


def suggest(name: str, allowed: tuple[str, ...] | list[str]) -> str | None:
    """The closest allowed name, if one is close enough to be a likely typo."""
    matches = difflib.get_close_matches(name, list(allowed), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _message(error: dict[str, Any], path: tuple[str, ...]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        parent = ".".join(path[:-1])
        allowed = spec_field_names().get(parent, ())
        hint = suggest(str(path[-1]), allowed)
        text = "unknown field"
        if hint:
            text += f" (did you mean {hint!r}?)"
        if allowed:
            text += f"; allowed: {', '.join(allowed)}"
        return text
    if kind == "json_invalid":
        return f"is not valid JSON ({ctx.get('error', 'parse error')})"
    if kind == "missing":
        return "is required"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return f"{error['msg'].replace('Input should be', 'must be')} (got {_short(error.get('input'))})"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be a whole number (got {_short(error.get('input'))})"
    if kind in ("float_type", "float_parsing", "finite_number"):
        return f"must be a finite number (got {_short(error.get('input'))})"
    if kind in ("string_too_long", "too_long"):
        limit = ctx.get("max_length")
        unit = "characters" if kind == "string_too_long" else "items"
        return f"is too long: at most {limit} {unit}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_pattern_mismatch":
        return f"has characters that are not allowed (got {_short(error.get('input'))})"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')} (got {_short(error.get('input'))})"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return "must be a JSON object" + ("" if path else " (send Content-Type: application/json)")
    if kind == "list_type":
        return "must be a list"
    return error["msg"]


def field_errors(exc: ValidationError, prefix: tuple[str, ...] = ()) -> list[FieldError]:
    """Every problem in a pydantic ValidationError, as FieldErrors with dotted paths."""
    return errors_from_list(exc.errors(include_url=False), prefix)


def errors_from_list(errors: list[dict[str, Any]], prefix: tuple[str, ...] = (),
                     drop: tuple[str, ...] = ()) -> list[FieldError]:
    """FieldErrors from pydantic-style error dicts (FastAPI's too); ``drop`` strips
    leading location parts such as "body"."""
    result = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        while loc and loc[0] in drop:
            loc.pop(0)
        if error.get("type") == "json_invalid":
            loc = []  # the location is a character offset, not a field
        path = prefix + tuple(loc)
        result.append(FieldError(".".join(path) or "body", _message(error, path)))
    return result


def parse_spec(data: dict[str, Any]) -> JobSpec:
    """A JobSpec from plain data, or SpecError naming every bad field."""
    from orchestrator.domain.spec import JobSpec

    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(field_errors(exc)) from None

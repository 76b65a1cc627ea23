"""A small, hand-written subset of JSON Schema for checking what a CLASSIFY call answers (no dependency).

Supported keywords: type (object, array, string, number, integer, boolean, null, or a list of them), properties,
required, additionalProperties (false or a schema), items, enum, const, minimum, maximum, minItems, maxItems,
minLength, maxLength; title and description are ignored. Any other keyword is refused by `check_schema`, so a
schema never silently promises a check that is not made.

`validate` returns a list of problems ("$.deals[3].risk: 'severe' is not one of ['low', 'medium', 'high']"),
empty when the value is valid. `max_items` caps every array whose schema sets no maxItems of its own.
"""
from __future__ import annotations

from typing import Any

_TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}
_KEYWORDS = {"type", "properties", "required", "additionalProperties", "items", "enum", "const", "minimum",
             "maximum", "minItems", "maxItems", "minLength", "maxLength", "title", "description"}
MAX_PROBLEMS = 5


def check_schema(schema: Any, path: str = "$") -> None:
    """Raise ValueError when `schema` uses something this validator does not check."""
    if not isinstance(schema, dict):
        raise ValueError(f"schema at {path} must be an object")
    unknown = set(schema) - _KEYWORDS
    if unknown:
        raise ValueError(f"schema at {path} uses unsupported keywords: {', '.join(sorted(unknown))}")
    types = schema.get("type")
    for t in types if isinstance(types, list) else [types] if types is not None else []:
        if t not in _TYPES:
            raise ValueError(f"schema at {path} has unknown type {t!r}")
    for name, sub in (schema.get("properties") or {}).items():
        check_schema(sub, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        check_schema(schema["additionalProperties"], f"{path}.*")
    if "items" in schema:
        check_schema(schema["items"], f"{path}[]")


def validate(value: Any, schema: dict[str, Any], *, max_items: int | None = None) -> list[str]:
    problems: list[str] = []
    _check(value, schema, "$", problems, max_items)
    return problems[:MAX_PROBLEMS]


def _type_of(value: Any) -> set[str]:
    if value is None:
        return {"null"}
    if isinstance(value, bool):
        return {"boolean"}
    if isinstance(value, int):
        return {"integer", "number"}
    if isinstance(value, float):
        return {"number", "integer"} if value.is_integer() else {"number"}
    if isinstance(value, str):
        return {"string"}
    if isinstance(value, list):
        return {"array"}
    if isinstance(value, dict):
        return {"object"}
    return {type(value).__name__}


def _same(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1, 1 is 1.0."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check(value: Any, schema: dict[str, Any], path: str, problems: list[str], max_items: int | None) -> None:
    if len(problems) >= MAX_PROBLEMS:
        return
    wanted = schema.get("type")
    if wanted is not None:
        allowed = set(wanted) if isinstance(wanted, list) else {wanted}
        if not allowed & _type_of(value):
            problems.append(f"{path}: expected {' or '.join(sorted(allowed))}, got {_show(value)}")
            return
    if "const" in schema and not _same(value, schema["const"]):
        problems.append(f"{path}: must be {_show(schema['const'])}, got {_show(value)}")
    if "enum" in schema and not any(_same(value, e) for e in schema["enum"]):
        problems.append(f"{path}: {_show(value)} is not one of {schema['enum']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{path}: {value} is below the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{path}: {value} is above the maximum {schema['maximum']}")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            problems.append(f"{path}: shorter than {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(f"{path}: longer than {schema['maxLength']} characters")
    if isinstance(value, list):
        _check_array(value, schema, path, problems, max_items)
    if isinstance(value, dict):
        _check_object(value, schema, path, problems, max_items)


def _check_array(value: list, schema: dict[str, Any], path: str, problems: list[str], max_items: int | None) -> None:
    limit = schema.get("maxItems", max_items)
    if limit is not None and len(value) > limit:
        problems.append(f"{path}: {len(value)} items, at most {limit} allowed")
    if "minItems" in schema and len(value) < schema["minItems"]:
        problems.append(f"{path}: {len(value)} items, at least {schema['minItems']} required")
    if "items" in schema:
        for i, item in enumerate(value):
            _check(item, schema["items"], f"{path}[{i}]", problems, max_items)


def _check_object(value: dict, schema: dict[str, Any], path: str, problems: list[str], max_items: int | None) -> None:
    properties = schema.get("properties") or {}
    for name in schema.get("required") or []:
        if name not in value:
            problems.append(f"{path}: missing required property {name!r}")
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            _check(item, properties[key], f"{path}.{key}", problems, max_items)
        elif extra is False:
            problems.append(f"{path}: unexpected property {_show(key)}")
        elif isinstance(extra, dict):
            _check(item, extra, f"{path}.{key}", problems, max_items)

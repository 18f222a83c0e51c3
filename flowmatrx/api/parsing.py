"""Reading request bodies and query strings strictly, before any schema sees them.

JSON that Python would accept but the database or other clients would not is refused
with the place it was found: `NaN`/`Infinity` (and numbers that overflow to them), NUL
characters (PostgreSQL's jsonb refuses them), lone surrogates (not encodable as UTF-8),
nesting deeper than MAX_DEPTH. Bodies over `FLOWMATRX_API_MAX_BODY_BYTES` (1 MB) answer
413, malformed JSON 400, the rest 422.
"""

import json
import math

from django.conf import settings
from ninja.parser import Parser

from flowmatrx.api.errors import MalformedRequest, PayloadTooLarge, Unprocessable

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
MAX_DEPTH = 100
"""Deepest nesting of objects and arrays in a body."""


def max_body_bytes() -> int:
    return int(getattr(settings, "FLOWMATRX_API_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES))


class _NotFinite(ValueError):
    pass


def _constant(name: str):
    raise _NotFinite(f"{name} is not allowed in JSON")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(f"{text} is out of range")
    return value


def text_problem(text: str) -> str | None:
    """Why a string cannot be stored, or None."""
    if "\x00" in text:
        return "NUL characters (\\u0000) are not allowed"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "lone surrogate characters are not allowed"
    return None


def check_value(value, loc: tuple = ("body",)) -> None:
    """Refuse NUL characters, lone surrogates (in keys too) and too deep nesting."""
    stack = [(value, loc)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                raise Unprocessable(problem, loc=where)
        elif isinstance(item, dict | list):
            if len(where) - len(loc) >= MAX_DEPTH:
                raise Unprocessable(f"nested deeper than {MAX_DEPTH} levels", loc=where)
            if isinstance(item, list):
                stack.extend((v, (*where, i)) for i, v in enumerate(item))
                continue
            for k, v in item.items():
                problem = text_problem(k)
                if problem:
                    raise Unprocessable(f"key: {problem}", loc=where)
                stack.append((v, (*where, k)))


def parse_json(raw: bytes):
    if len(raw) > max_body_bytes():
        raise PayloadTooLarge(f"the request body is larger than {max_body_bytes()} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedRequest(f"the request body is not UTF-8: {exc.reason}") from None
    try:
        data = json.loads(text, parse_constant=_constant, parse_float=_float)
    except _NotFinite as exc:
        raise Unprocessable(f"{exc}: numbers must be finite", loc=("body",)) from None
    except json.JSONDecodeError as exc:
        raise MalformedRequest(
            f"malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise Unprocessable(f"nested deeper than {MAX_DEPTH} levels", loc=("body",)) from None
    except ValueError as exc:  # e.g. an integer literal past Python's digit limit
        raise Unprocessable(str(exc), loc=("body",)) from None
    check_value(data)
    return data


class StrictJsonParser(Parser):
    def parse_body(self, request):
        length = request.META.get("CONTENT_LENGTH")
        if length and length.isascii() and length.isdigit() and int(length) > max_body_bytes():
            raise PayloadTooLarge(f"the request body is larger than {max_body_bytes()} bytes")
        return parse_json(request.body)

    def parse_querydict(self, data, list_fields, request):
        for key, values in data.lists():
            for value in [key, *values]:
                problem = text_problem(value)
                if problem:
                    raise Unprocessable(problem, loc=("query", key))
        return super().parse_querydict(data, list_fields, request)

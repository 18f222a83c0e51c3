"""The API's one error shape, the errors views raise, and the handlers that render them.

Every 4xx answers `{"errors": [{"loc": [...], "msg": "..."}], "detail": "..."}`: `loc`
says where (`["body", "definition", "nodes", "fetch", "data", "config", "url"]`,
`["query", "limit"]`, `["path", "run_id"]`, `["header", "Authorization"]`), `msg` says
what is wrong, `detail` sums it up in one sentence.
"""

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from engine.errors import InvalidDefinition, StateConflict

logger = logging.getLogger("flowmatrx")

Loc = Sequence[str | int]


def error(loc: Loc, msg: str, **extra: Any) -> dict:
    return {"loc": list(loc), "msg": msg, **extra}


class ApiError(Exception):
    """The request was refused."""

    status = 400
    default_loc: tuple = ()

    def __init__(
        self, msg: str | None = None, *, loc: Loc | None = None, errors: list[dict] | None = None
    ):
        self.detail = msg or self.__doc__
        self.errors = errors or [error(self.default_loc if loc is None else loc, self.detail)]
        super().__init__(self.detail)


class MalformedRequest(ApiError):
    """The request body is not valid JSON."""

    status = 400
    default_loc = ("body",)


class Unauthorized(ApiError):
    """Authentication required: send `Authorization: Bearer <api key>` or sign in."""

    status = 401
    default_loc = ("header", "Authorization")


class Forbidden(ApiError):
    """You are not allowed to do this."""

    status = 403


class NotFound(ApiError):
    """Not found."""

    status = 404


class Conflict(ApiError):
    """The resource is not in a state that allows this."""

    status = 409


class PayloadTooLarge(ApiError):
    """The request body is too large."""

    status = 413
    default_loc = ("body",)


class Unprocessable(ApiError):
    """The request is well-formed JSON but its content is invalid."""

    status = 422


def definition_errors(problems: Iterable) -> list[dict]:
    """Validation problems of a definition as field errors, located from the workflow:
    `["definition", "nodes", "<node id>", ...]`."""
    out = []
    for problem in problems:
        item = problem.as_dict()
        loc = list(item["loc"])
        item["loc"] = loc if loc[:1] == ["definition"] else ["definition", *loc]
        out.append(item)
    return out


def _body(detail: str, errors: list[dict]) -> dict:
    return {"errors": errors, "detail": detail}


def _render(api: NinjaAPI, request: HttpRequest, status: int, detail: str, errors: list[dict]):
    return api.create_response(request, _body(detail, errors), status=status)


def _ninja_loc(loc: Sequence) -> list:
    # ninja says ("body", "payload", "field"): every body parameter is named `payload`
    loc = list(loc)
    if loc[:2] == ["body", "payload"]:
        loc = ["body", *loc[2:]]
    return loc


def install(api: NinjaAPI) -> None:
    """Register the handlers: every error the API raises leaves it in the one shape."""

    def api_error(request, exc: ApiError):
        return _render(api, request, exc.status, exc.detail, exc.errors)

    def validation_error(request, exc: ValidationError):
        errors = [
            error(_ninja_loc(e.get("loc", ())), str(e.get("msg", "invalid")), type=e.get("type"))
            for e in exc.errors
        ]
        first = errors[0] if errors else error((), "invalid")
        where = ".".join(str(part) for part in first["loc"])
        detail = f"{where}: {first['msg']}" if where else first["msg"]
        if len(errors) > 1:
            detail += f" (and {len(errors) - 1} more)"
        return _render(api, request, 422, detail, errors)

    def http_error(request, exc: HttpError):
        # ninja wraps everything the body parser raises: our own errors keep their status
        if isinstance(exc.__cause__, ApiError):
            return api_error(request, exc.__cause__)
        if isinstance(exc, AuthenticationError):
            return api_error(request, Unauthorized())
        if exc.status_code == 400:
            return api_error(request, MalformedRequest())
        return _render(api, request, exc.status_code, str(exc), [error((), str(exc))])

    def not_found(request, exc: Http404):
        return api_error(request, NotFound())

    def state_conflict(request, exc: StateConflict):
        return api_error(request, Conflict(str(exc)))

    def invalid_definition(request, exc: InvalidDefinition):
        return _render(api, request, 422, str(exc), definition_errors(exc.problems))

    def too_big(request, exc: RequestDataTooBig):
        return api_error(request, PayloadTooLarge())

    def server_error(request, exc: Exception) -> HttpResponse:
        logger.error("%s %s failed", request.method, request.path, exc_info=exc)
        return _render(
            api, request, 500, "Internal server error.", [error((), "internal server error")]
        )

    api.add_exception_handler(ApiError, api_error)
    api.add_exception_handler(ValidationError, validation_error)
    api.add_exception_handler(HttpError, http_error)
    api.add_exception_handler(Http404, not_found)
    api.add_exception_handler(StateConflict, state_conflict)
    api.add_exception_handler(InvalidDefinition, invalid_definition)
    api.add_exception_handler(RequestDataTooBig, too_big)
    api.add_exception_handler(Exception, server_error)

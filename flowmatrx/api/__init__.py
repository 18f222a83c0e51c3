"""The JSON API (SPEC §7), served at /api/v1: docs at /api/v1/docs, the OpenAPI document
at /api/v1/openapi.json.

One module per resource (workflows, runs, events, catalog); `auth` decides who may do
what, `errors` gives every refusal one shape, `parsing` reads bodies strictly,
`idempotency` makes creating requests safe to retry, `pagination` pages lists by cursor.
"""

from ninja import NinjaAPI, Router

from accounts.access import public
from flowmatrx.api import catalog, docs, errors, events, runs, workflows
from flowmatrx.api.auth import READ, requires
from flowmatrx.api.parsing import StrictJsonParser

DESCRIPTION = """
The Flow Matrx API: everything the browser does, for programs.

**Auth**: `Authorization: Bearer <api key>` (`python manage.py create_api_key <username>
[--scopes read,run,manage]`) or the browser session (send `X-CSRFToken` on unsafe
methods). Without valid credentials every endpoint answers 401. Each operation needs a
scope (`read`: GETs; `run`: starting, resuming, cancelling and retrying runs, sending
events; `manage`: creating, editing, publishing, archiving and deleting workflows) and
answers 403 unless the user's role allows it (viewer: `read`; member and admin: all) and,
with a key, the key has it: a key never grants more than its owner's role.

**Errors**: `{"errors": [{"loc": [...], "msg": "..."}], "detail": "..."}` for every 4xx:
400 malformed JSON, 401, 403, 404 unknown ids, 409 state conflicts, 413 body over 1 MB,
422 invalid content (wrong types, unknown fields, NaN/Infinity, NUL characters, lone
surrogates, definition problems located as `["definition", "nodes", "<id>", ...]`).

**Idempotency**: creating POSTs take `X-Idempotency-Key`: the same key (per user and
endpoint) with the same request answers the first response again (header
`Idempotent-Replayed: true`) and creates nothing; with a different request, 422.

**Lists**: `{"items": [...], "next_cursor": "..." | null}`; pass `?cursor=<next_cursor>`
(and `?limit=`, 1 to 200) for the next page.
"""

api = NinjaAPI(
    title="Flow Matrx API",
    version="1",
    description=DESCRIPTION.strip(),
    urls_namespace="api-v1",
    openapi_url="/openapi.json",
    docs_url="/docs",
    docs=docs.LocalSwagger(),
    auth=requires(READ),
    parser=StrictJsonParser(),
)
errors.install(api)

api.add_router("", workflows.router)
api.add_router("", runs.router)
api.add_router("", events.router)
api.add_router("", catalog.router)
api.add_router("", docs.router)

fallback = Router()


@fallback.api_operation(
    ["GET", "POST", "PUT", "PATCH", "DELETE"], "/{path:rest}", auth=None, include_in_schema=False
)
@public("it only answers 404")
def unknown_path(request, rest: str):
    """Unknown paths under /api/v1 answer 404 in the API's error shape."""
    raise errors.NotFound(f"no endpoint {request.path}", loc=("path",))


api.add_router("", fallback)

__all__ = ["api"]

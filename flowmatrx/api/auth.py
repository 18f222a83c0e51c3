"""Who is calling, and whether they may: the API's one authorization point.

Two ways in: the browser's Django session (CSRF enforced on unsafe methods, as for any
form) or `Authorization: Bearer <api key>`. Every operation names the scope it needs
with `auth=requires(SCOPE)`; `authorize` is where that is decided: the user's role must
allow the scope (accounts.roles: read is viewer+, run and manage member+) and a key must
also carry it, so a key never grants more than its owner's role and its scopes; a session
has its role's rights. A test walks every operation and fails for one without a scope.
"""

from dataclasses import dataclass

from django.conf import settings
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf

from accounts import roles
from accounts.models import ApiKey
from engine.statuses import TriggerType
from flowmatrx.api.errors import Forbidden, Unauthorized

READ = roles.READ
"""Every GET."""
RUN = roles.RUN
"""Start, cancel, retry and resume runs; send events."""
MANAGE = roles.MANAGE
"""Create, edit, publish, archive and delete workflows."""
SCOPES = (READ, RUN, MANAGE)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


@dataclass(frozen=True)
class Principal:
    """The caller of one request (`request.auth`)."""

    user: object
    api_key: ApiKey | None = None

    @property
    def username(self) -> str:
        return self.user.get_username()

    @property
    def trigger_type(self) -> TriggerType:
        """A run started by a program (API key) is an `api` run; from the browser, `manual`."""
        return TriggerType.API if self.api_key is not None else TriggerType.MANUAL


def authorize(principal: Principal, scope: str) -> Principal:
    """Allow `principal` to act within `scope`, or raise Forbidden (403)."""
    if not roles.may(principal.user, scope):
        role = roles.role_of(principal.user)
        raise Forbidden(
            f"the {role} role does not allow {scope!r} (it needs {roles.REQUIRED_ROLE[scope]})",
            loc=("header", "Authorization") if principal.api_key else ("session",),
        )
    key = principal.api_key
    if key is not None and not key.has_scope(scope):
        raise Forbidden(
            f"this API key does not have the {scope!r} scope (it has: {', '.join(key.scopes)})",
            loc=("header", "Authorization"),
        )
    return principal


def allows(principal: Principal, scope: str) -> bool:
    """Whether `authorize(principal, scope)` would let it through."""
    try:
        authorize(principal, scope)
    except Forbidden:
        return False
    return True


def may_start_runs(request) -> bool:
    """Whether the caller of `request` may start runs (so may see webhook URLs). Without a
    request (internal use) there is no caller to restrict."""
    if request is None:
        return True
    principal = getattr(request, "auth", None)
    return isinstance(principal, Principal) and allows(principal, RUN)


class ApiKeyAuth(HttpBearer):
    """`Authorization: Bearer fmx_...`. A header that is present but wrong answers 401 at
    once (it never falls back to the session)."""

    def __init__(self, scope: str):
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}")
        self.scope = scope
        super().__init__()

    def __call__(self, request):
        header = request.headers.get(self.header)
        if not header:
            return None
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != self.openapi_scheme or not token.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <api key>'")
        return self.authenticate(request, token.strip())

    def authenticate(self, request, token):
        key = ApiKey.authenticate(token)
        if key is None:
            raise Unauthorized("the API key is invalid, expired or revoked")
        return authorize(Principal(key.user, key), self.scope)


class SessionAuth(APIKeyCookie):
    """The browser's session. Without a signed-in user it steps aside (so the answer is
    401, not a CSRF failure); with one, unsafe methods need the CSRF token."""

    param_name = settings.SESSION_COOKIE_NAME

    def __init__(self, scope: str):
        self.scope = scope
        super().__init__(csrf=True)

    def _get_key(self, request):
        return request.COOKIES.get(self.param_name)

    def authenticate(self, request, key):
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        exempt = getattr(request, "_ninja_csrf_exempt", False)
        if request.method not in SAFE_METHODS and not exempt and check_csrf(request):
            raise Forbidden(
                "CSRF check failed: send the X-CSRFToken header with the session",
                loc=("header", "X-CSRFToken"),
            )
        return authorize(Principal(user), self.scope)


def requires(scope: str) -> list:
    """The `auth=` of an operation that needs `scope`."""
    return [ApiKeyAuth(scope), SessionAuth(scope)]

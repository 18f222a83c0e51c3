"""ASGI entry point: HTTP (Django, plus static files in the embedded mode) and WebSockets."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flowmatrx.settings")
django_http = get_asgi_application()

from urllib.parse import urlsplit  # noqa: E402

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs the app registry)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import WebsocketDenier  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.http.request import split_domain_port, validate_host  # noqa: E402

from runs.routing import websocket_urlpatterns  # noqa: E402

http_app = ASGIStaticFilesHandler(django_http) if settings.FLOWMATRX_SERVE_STATIC else django_http

DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


class SameOriginValidator:
    """Refuse a WebSocket handshake whose `Origin` is not the host it was sent to (and an
    allowed host): another site's page cannot ride the user's session cookie. Browsers
    always send `Origin`; a client without one (a script with an API key) is let through
    to the consumer, which still requires credentials."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        headers = dict(scope.get("headers", []))
        origin = headers.get(b"origin")
        if origin is not None and not self.same_origin(
            origin.decode("latin1"), headers.get(b"host", b"").decode("latin1")
        ):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)

    @staticmethod
    def same_origin(origin: str, host: str) -> bool:
        parts = urlsplit(origin)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            return False
        origin_port = str(parts.port or DEFAULT_PORTS[parts.scheme])
        host_name, host_port = split_domain_port(host)
        if not host_name or not validate_host(host_name, settings.ALLOWED_HOSTS):
            return False
        return parts.hostname.lower() == host_name and origin_port == (
            host_port or DEFAULT_PORTS[parts.scheme]
        )


application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

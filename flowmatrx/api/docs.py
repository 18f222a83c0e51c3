"""The API's docs page: Swagger UI served from django-ninja's bundled files, so it works
on a server without internet access (no CDN, and without adding `ninja` to
INSTALLED_APPS)."""

import json
from functools import cache
from pathlib import Path

import ninja
from django.http import Http404, HttpResponse
from django.middleware.csrf import get_token
from django.utils.html import escape
from ninja import Router
from ninja.openapi.docs import DocsBase

from accounts.access import public

ASSETS_DIR = Path(ninja.__file__).parent / "static" / "ninja"
ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-init.js": "text/javascript",
    "favicon.png": "image/png",
}

PAGE = """<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <link rel="stylesheet" href="{assets}/swagger-ui.css">
  <link rel="icon" href="{assets}/favicon.png" type="image/png">
</head>
<body data-csrf-token="{csrf}" data-api-csrf="true">
  <script type="application/json" id="swagger-settings">{settings}</script>
  <div id="swagger-ui"></div>
  <script src="{assets}/swagger-ui-bundle.js"></script>
  <script src="{assets}/swagger-ui-init.js"></script>
</body>
</html>
"""


class LocalSwagger(DocsBase):
    def render_page(self, request, api, **kwargs):
        settings = {
            "layout": "BaseLayout",
            "deepLinking": True,
            "url": self.get_openapi_url(api, kwargs),
        }
        # "</" cannot end the script element early once escaped
        settings_json = json.dumps(settings).replace("</", "<\\/")
        html = PAGE.format(
            title=escape(api.title),
            assets=escape(request.path.rstrip("/") + "/assets"),
            csrf=escape(get_token(request)),
            settings=settings_json,
        )
        return HttpResponse(html)


@cache
def _asset(name: str) -> bytes:
    return (ASSETS_DIR / name).read_bytes()


router = Router(tags=["docs"])


@router.get("/docs/assets/{name}", auth=None, include_in_schema=False)
@public("the docs page's own scripts and styles")
def docs_asset(request, name: str):
    if name not in ASSETS:
        raise Http404(name)
    response = HttpResponse(_asset(name), content_type=ASSETS[name])
    response["Cache-Control"] = "public, max-age=86400"
    return response

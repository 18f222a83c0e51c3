"""Cookie and transport settings, read fresh from the environment in a child process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NAMES = [
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SESSION_COOKIE_HTTPONLY",
    "SESSION_COOKIE_SAMESITE",
    "CSRF_COOKIE_SAMESITE",
    "SECURE_HSTS_SECONDS",
    "SECURE_PROXY_SSL_HEADER",
    "SECURE_CONTENT_TYPE_NOSNIFF",
    "X_FRAME_OPTIONS",
]


def settings_with(tmp_path, **env) -> dict:
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        f"print(json.dumps({{n: getattr(settings, n, None) for n in {NAMES!r}}}))"
    )
    child_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FLOWMATRX_")},
        "DJANGO_SETTINGS_MODULE": "flowmatrx.settings",
        "FLOWMATRX_VAR_DIR": str(tmp_path),
        "SECRET_KEY": "test",
        **env,
    }
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=child_env, capture_output=True, check=True
    )
    return json.loads(out.stdout)


@pytest.mark.parametrize("debug", ["0", "1"])
def test_plain_http_by_default_with_httponly_samesite_cookies(tmp_path, debug):
    values = settings_with(tmp_path, DEBUG=debug)
    assert values["SESSION_COOKIE_SECURE"] is False and values["CSRF_COOKIE_SECURE"] is False
    assert values["SESSION_COOKIE_HTTPONLY"] is True
    assert values["SESSION_COOKIE_SAMESITE"] == values["CSRF_COOKIE_SAMESITE"] == "Lax"
    assert values["SECURE_HSTS_SECONDS"] == 0
    assert values["SECURE_CONTENT_TYPE_NOSNIFF"] is True and values["X_FRAME_OPTIONS"] == "DENY"


def test_https_makes_cookies_secure_and_sends_hsts(tmp_path):
    values = settings_with(tmp_path, FLOWMATRX_HTTPS="1")
    assert values["SESSION_COOKIE_SECURE"] is True and values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_HSTS_SECONDS"] == 31536000
    assert values["SECURE_PROXY_SSL_HEADER"] is None
    behind_proxy = settings_with(tmp_path, FLOWMATRX_HTTPS="1", FLOWMATRX_BEHIND_PROXY="1")
    assert behind_proxy["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_the_old_secure_cookies_switch_still_works(tmp_path):
    assert settings_with(tmp_path, FLOWMATRX_SECURE_COOKIES="1")["SESSION_COOKIE_SECURE"] is True


def test_cookies_set_over_https_are_secure_even_without_the_switch(client, django_user_model):
    django_user_model.objects.create_user("ada", password="pw-of-ada")
    plain = client.get("/accounts/login/")
    assert plain.cookies["csrftoken"]["secure"] == ""
    over_https = client.get("/accounts/login/", secure=True)
    assert over_https.cookies["csrftoken"]["secure"] is True
    signed_in = client.post(
        "/accounts/login/", {"username": "ada", "password": "pw-of-ada"}, secure=True
    )
    assert signed_in.status_code == 302
    assert signed_in.cookies["sessionid"]["secure"] is True
    assert signed_in.cookies["sessionid"]["httponly"] is True

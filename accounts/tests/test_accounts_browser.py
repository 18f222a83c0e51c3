"""Signing in, making an API key and signing out in a real browser (Debian's Chromium
through Playwright, against `manage.py serve`). Skipped like the run page's browser test."""

import re

import pytest

from runs.tests.test_run_page_browser import (  # noqa: F401  (fixtures)
    CHROMIUM,
    chromium_context,
    server,
)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")


@pytest.fixture
def page(server, bob, settings):  # noqa: F811  (server is the fixture imported above)
    # The server hashes with the default hashers; the suite's fast MD5 is unknown to it.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    bob.set_password("password")
    bob.save(update_fields=["password"])
    with chromium_context(server) as context:
        yield context.new_page()


def test_sign_in_make_a_key_and_sign_out(page):
    page.goto("/runs/")
    assert "/accounts/login/?next=/runs/" in page.url
    assert page.locator("nav a").count() == 0  # nothing to navigate to before signing in
    page.fill("input[name=username]", "bob")
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    assert page.locator(".errors").is_visible()
    page.fill("input[name=password]", "password")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"^http://[^/]+/runs/$"))
    assert page.locator(".topbar .who").inner_text().split() == ["bob", "member"]
    assert page.locator(".topbar a", has_text="Users").count() == 0  # admins only

    page.click("text=API keys")
    page.fill("input[name=name]", "laptop")
    page.check("input[name=scopes][value=run]")
    page.click("#key-create button[type=submit]")
    secret = page.locator("#new-key-value").inner_text()
    assert re.fullmatch(r"fmx_[0-9a-f]{10}_[A-Za-z0-9_-]+", secret)
    assert page.locator("#keys tbody tr", has_text="laptop").inner_text().count("read, run") == 1
    page.reload()  # shown once: a reload is a GET of the list, without the secret
    assert secret not in page.content()

    page.click("text=Sign out")
    page.wait_for_url(re.compile(r"^http://[^/]+/accounts/login/$"))
    page.goto("/runs/")
    assert "/accounts/login/" in page.url

"""Cookies are Secure whenever the request came over HTTPS.

`SESSION_COOKIE_SECURE` / `CSRF_COOKIE_SECURE` are all-or-nothing, and the embedded mode
serves plain http (where Secure cookies would make signing in impossible), so they stay
off unless `FLOWMATRX_HTTPS=1`. This middleware closes the gap: a server reached over
HTTPS (directly, or behind a proxy named by `SECURE_PROXY_SSL_HEADER`) never hands out a
session or CSRF cookie that a browser would also send over plain http.
"""


class SecureCookiesOverHttps:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.is_secure():
            for cookie in response.cookies.values():
                cookie["secure"] = True
        return response

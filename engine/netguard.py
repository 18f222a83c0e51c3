"""The network guard: outbound HTTP from steps never reaches private networks (SPEC §6).

Every connection made by `guarded_client` (and so by `fetch`) goes through
`GuardedBackend.connect_tcp`, which resolves the host once, refuses it when the name or any
of its addresses is loopback, private, link-local, multicast, unspecified, reserved or a
cloud metadata endpoint, and then connects to exactly the addresses it checked. The URL's
host name still goes into the Host header, TLS SNI and the certificate check. Because the
check sits on the connection itself, every redirect hop is checked too, and DNS rebinding
between check and connect is impossible: nothing is resolved twice.

Settings, read at connection time:

* `FLOWMATRX_ALLOW_PRIVATE_NETWORKS = True` lifts the guard.
* `FLOWMATRX_ALLOW_ADDRESSES`: exact "ip:port" pairs let through while everything else
  stays guarded, e.g. `["10.0.0.5:8080", "[::1]:9000"]` (one internal service; the tests
  use it to check that redirects are re-checked). Empty by default.
"""

import asyncio
import functools
import ipaddress
import json
import socket
import ssl
from typing import Any

import httpcore
import httpx
from django.conf import settings

from engine.errors import NonRetryableError, StepError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024
MAX_REDIRECTS = 5
USER_AGENT = "FlowMatrx/0.1"

METADATA_HOSTS = frozenset(
    {
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, ...
        "169.254.170.2",  # AWS ECS task metadata
        "100.100.100.200",  # Alibaba Cloud
        "fd00:ec2::254",  # AWS over IPv6
    )
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class AddressRefused(NonRetryableError):
    """The network guard refused the address."""


# -- the decision -----------------------------------------------------------------------------


def blocked_reason(address: str | IPAddress) -> str | None:
    """Why a step may not connect to this address ("a loopback address"), or None."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        reason = blocked_reason(embedded)
        if reason:
            return f"{reason} ({embedded} in IPv6 form)"
        if ip in _NAT64:  # DNS64 gives IPv6-only hosts these addresses for public sites
            return None
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip in _CGNAT:
        return "a private (carrier-grade NAT) address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "a non-public address"
    return None


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, 6to4, Teredo, NAT64 or IPv4-compatible one."""
    if ip.version != 6:
        return None
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    if ip in _NAT64 or ip in _IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _name_reason(host: str) -> str | None:
    name = host.rstrip(".").lower()
    if name in METADATA_HOSTS:
        return "a cloud metadata host name"
    if name == "localhost" or name.endswith(".localhost"):
        return "a loopback host name"
    return None


def _allowed_pairs() -> set[tuple[IPAddress, int]]:
    pairs = set()
    for entry in getattr(settings, "FLOWMATRX_ALLOW_ADDRESSES", None) or ():
        host, _, port = str(entry).rpartition(":")
        try:
            pairs.add((ipaddress.ip_address(host.strip("[]")), int(port)))
        except ValueError:
            raise NonRetryableError(
                f"FLOWMATRX_ALLOW_ADDRESSES: {entry!r} is not an 'ip:port' pair"
            ) from None
    return pairs


def _refusal(host: str, address: str | None, reason: str) -> AddressRefused:
    subject = host if address is None or address == host else f"{host} ({address})"
    return AddressRefused(
        f"refused: {subject} is {reason}; steps may not call private networks "
        "(the operator can allow them with FLOWMATRX_ALLOW_PRIVATE_NETWORKS=1)"
    )


async def _getaddrinfo(host: str, port: int) -> list[str]:
    """The addresses of `host`, in the resolver's order (tests replace this function)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


async def checked_addresses(host: str, port: int) -> list[str]:
    """Resolve `host` once and return its addresses to connect to. Raises AddressRefused
    when the name or any of its addresses is off limits; OSError when it does not resolve."""
    reason = _name_reason(host)
    if reason:
        raise _refusal(host, None, reason)
    addresses = await _getaddrinfo(host, port)
    allowed = _allowed_pairs()
    for address in addresses:
        ip = ipaddress.ip_address(address)
        if (ip, port) in allowed:
            continue
        reason = blocked_reason(ip)
        if reason:
            raise _refusal(host, address, reason)
    return addresses


# -- the HTTP client --------------------------------------------------------------------------


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to addresses the guard accepted."""

    def __init__(self):
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self, host, port, timeout=None, local_address=None, socket_options=None
    ) -> httpcore.AsyncNetworkStream:
        options = dict(timeout=timeout, local_address=local_address, socket_options=socket_options)
        if settings.FLOWMATRX_ALLOW_PRIVATE_NETWORKS:
            return await self._backend.connect_tcp(host, port, **options)
        try:
            async with asyncio.timeout(timeout):
                addresses = await checked_addresses(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"could not resolve {host}: {exc}") from None
        error = None
        for address in addresses:
            try:
                return await self._backend.connect_tcp(address, port, **options)
            except httpcore.ConnectError as exc:
                error = exc
        raise error or httpcore.ConnectError(f"{host} has no addresses")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """Loading the CA bundle takes ~50 ms: do it once (the context is safe to share)."""
    return httpx.create_ssl_context()


def guarded_client(
    *, timeout: float = 30.0, follow_redirects: bool = True, max_redirects: int = MAX_REDIRECTS
) -> httpx.AsyncClient:
    """An httpx client whose every connection (redirects included) passes the guard.

    Use it as `async with guarded_client(timeout=10) as client: ...`. Environment proxies
    are ignored: a proxy would connect on the step's behalf, out of the guard's sight.
    """
    ssl_context = _ssl_context()
    transport = httpx.AsyncHTTPTransport(verify=ssl_context, trust_env=False)
    # httpx has no option for httpcore's network backend, so swap in a pool that uses ours.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context, network_backend=GuardedBackend()
    )
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(timeout),
        follow_redirects=follow_redirects,
        max_redirects=max_redirects,
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
    )


# -- one request, as the step types make it -------------------------------------------------


async def fetch(
    method: str,
    url: str,
    *,
    timeout: float,
    max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    follow_redirects: bool = True,
    **request: Any,
) -> tuple[httpx.Response, bytes]:
    """Send one request through the guard and read its body, at most `max_bytes`.

    `request` takes httpx's request arguments (headers, params, json, content). Returns the
    (closed) response and its body, whatever the status. Timeouts (`timeout` bounds the
    whole exchange) and network errors raise a retryable StepError; refusals, bad requests,
    too many redirects and oversized responses a NonRetryableError.
    """
    what = f"{method} {url}"
    try:
        async with (
            asyncio.timeout(timeout),
            guarded_client(timeout=timeout, follow_redirects=follow_redirects) as client,
        ):
            try:
                built = client.build_request(method, url, **request)
            except (httpx.InvalidURL, TypeError, ValueError) as exc:
                raise NonRetryableError(f"{what}: invalid request: {exc}") from None
            response = await client.send(built, stream=True)
            try:
                content = await read_limited(response, max_bytes)
            finally:
                await response.aclose()
    except (TimeoutError, httpx.TimeoutException):
        raise StepError(f"{what} timed out after {timeout:g} seconds") from None
    except httpx.TooManyRedirects:
        raise NonRetryableError(f"{what}: more than {MAX_REDIRECTS} redirects") from None
    except (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL) as exc:
        raise NonRetryableError(f"{what}: invalid request: {exc}") from None
    except httpx.TransportError as exc:
        raise StepError(f"{what} failed: {exc or type(exc).__name__}") from None
    except httpx.HTTPError as exc:
        raise NonRetryableError(f"{what} failed: {exc or type(exc).__name__}") from None
    return response, content


def request_headers(headers: Any, step: str) -> httpx.Headers:
    """Validated request headers from a step's `headers` config (scalar values)."""
    if not isinstance(headers, dict):
        raise NonRetryableError(f"{step}: 'headers' must be an object")
    try:
        return httpx.Headers(
            {str(k): json.dumps(v) if isinstance(v, bool) else str(v) for k, v in headers.items()}
        )
    except UnicodeEncodeError:
        raise NonRetryableError(f"{step}: header names and values must be ASCII") from None


async def read_limited(response: httpx.Response, limit: int) -> bytes:
    """The response body, refused (NonRetryableError) as soon as it exceeds `limit` bytes."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(response, limit)
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise _too_large(response, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(response: httpx.Response, limit: int) -> NonRetryableError:
    return NonRetryableError(
        f"{response.request.method} {response.url}: the response is larger than "
        f"the limit of {limit} bytes"
    )


def is_json(response: httpx.Response) -> bool:
    mime = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return mime == "application/json" or mime.endswith("+json")


def parse_body(response: httpx.Response, content: bytes) -> Any:
    """The body as JSON when the response says it is JSON (and it parses), else text."""
    if is_json(response) and content.strip():
        try:
            return json.loads(content)
        except ValueError:
            pass
    return content.decode(response.encoding or "utf-8", errors="replace")


def snippet(content: bytes, limit: int = 200) -> str:
    text = " ".join(content.decode("utf-8", errors="replace").split())
    return text if len(text) <= limit else text[:limit] + "…"


def is_retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


def status_error(response: httpx.Response, content: bytes, detail: str = "") -> StepError:
    """The failure for an unwanted status: retryable for 429 and 5xx, else not."""
    status = response.status_code
    message = f"{response.request.method} {response.url} failed with status {status}"
    if response.reason_phrase:
        message += f" {response.reason_phrase}"
    detail = detail or snippet(content)
    if detail:
        message += f": {detail}"
    if is_retryable_status(status):
        return StepError(message)
    return NonRetryableError(message)

"""The network guard (SPEC §6): private, loopback, link-local and metadata addresses are
refused after resolution and on every redirect, unless the operator allows them."""

import socket

import pytest

from engine import netguard
from engine.errors import NonRetryableError, StepError
from engine.handlers import http_request
from engine.netguard import AddressRefused, blocked_reason, checked_addresses
from engine.tests.http_servers import Reply, echo, step_context


@pytest.fixture(autouse=True)
def _guarded(settings):
    settings.FLOWMATRX_ALLOW_PRIVATE_NETWORKS = False
    settings.FLOWMATRX_ALLOW_ADDRESSES = []


async def get(url, **config):
    return await http_request.execute({"url": url, **config}, step_context())


# -- the decision -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("169.254.170.2", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("::127.0.0.1", "loopback"),
        ("2002:7f00:1::", "loopback"),
        ("2002:a9fe:a9fe::1", "cloud metadata"),
        ("64:ff9b::7f00:1", "loopback"),
        ("64:ff9b::a00:1", "private"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback"),
    ],
)
def test_blocked_addresses(address, reason):
    assert reason in blocked_reason(address)


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700:4700::1111", "64:ff9b::808:808"]
)
def test_public_addresses_pass(address):
    assert blocked_reason(address) is None


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.1", "127.1 (127.0.0.1) is a loopback address"),
        ("2130706433", "2130706433 (127.0.0.1) is a loopback address"),
        ("0x7f000001", "0x7f000001 (127.0.0.1) is a loopback address"),
        ("0x7f.1", "0x7f.1 (127.0.0.1) is a loopback address"),
        ("017700000001", "017700000001 (127.0.0.1) is a loopback address"),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1 is a loopback address"),
        ("::127.0.0.1", "(127.0.0.1 in IPv6 form)"),
        ("localhost", "localhost is a loopback host name"),
        ("LocalHost.", "is a loopback host name"),
        ("app.localhost", "is a loopback host name"),
        ("metadata.google.internal", "metadata.google.internal is a cloud metadata host name"),
        ("METADATA.GOOGLE.INTERNAL.", "is a cloud metadata host name"),
    ],
)
async def test_encodings_are_resolved_before_the_check(host, reason):
    with pytest.raises(AddressRefused, match="refused: ") as caught:
        await checked_addresses(host, 80)
    assert reason in str(caught.value)


# -- through the step -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:{port}/", "refused: 127.0.0.1 is a loopback address"),
        ("http://localhost:{port}/", "refused: localhost is a loopback host name"),
        ("http://127.1:{port}/", "refused: 127.1 (127.0.0.1) is a loopback address"),
        ("http://2130706433:{port}/", "(127.0.0.1) is a loopback address"),
        ("http://0x7f000001:{port}/", "(127.0.0.1) is a loopback address"),
        ("http://[::1]:{port}/", "refused: ::1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]:{port}/", "is a loopback address"),
        ("http://10.0.0.1/", "refused: 10.0.0.1 is a private address"),
        ("http://192.168.1.1/", "refused: 192.168.1.1 is a private address"),
        ("http://172.16.0.1/", "refused: 172.16.0.1 is a private address"),
        ("http://169.254.169.254/latest/meta-data/", "is a cloud metadata address"),
        ("http://[fe80::1]/", "refused: fe80::1 is a link-local address"),
        ("http://0.0.0.0:{port}/", "refused: 0.0.0.0 is an unspecified address"),
        ("http://224.0.0.1/", "refused: 224.0.0.1 is a multicast address"),
        ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata host name"),
        ("https://127.0.0.1:{port}/", "refused: 127.0.0.1 is a loopback address"),
    ],
)
async def test_step_refuses_private_destinations(start, url, reason):
    server = start(echo)
    with pytest.raises(NonRetryableError) as caught:
        await get(url.format(port=server.port))
    assert reason in str(caught.value)
    assert "FLOWMATRX_ALLOW_PRIVATE_NETWORKS" in str(caught.value)
    assert server.requests == []


async def test_the_operator_can_allow_private_networks(start, settings):
    server = start(echo)
    settings.FLOWMATRX_ALLOW_PRIVATE_NETWORKS = True
    for host in ("127.0.0.1", "localhost", "127.1"):
        output = await get(f"http://{host}:{server.port}/ok")
        assert output["status_code"] == 200
    assert len(server.requests) == 3


async def test_allowed_addresses_are_exact_ip_port_pairs(start, settings):
    allowed, other = start(echo), start(echo)
    settings.FLOWMATRX_ALLOW_ADDRESSES = [f"127.0.0.1:{allowed.port}"]
    assert (await get(f"{allowed.url}/x"))["body"]["path"] == "/x"
    with pytest.raises(AddressRefused, match="loopback"):
        await get(f"{other.url}/x")
    assert other.requests == []


async def test_a_malformed_allow_list_fails_clearly(settings):
    settings.FLOWMATRX_ALLOW_ADDRESSES = ["127.0.0.1"]
    with pytest.raises(NonRetryableError, match="FLOWMATRX_ALLOW_ADDRESSES"):
        await get("http://127.0.0.1:9/")


# -- redirects --------------------------------------------------------------------------------


def redirect_to(location):
    def app(request):
        if request.path == "/final":
            return Reply(body={"final": True})
        return Reply(302, headers={"Location": location})

    return app


async def test_redirect_to_a_private_port_is_refused(start, settings):
    target = start(echo)
    entry = start(redirect_to(f"http://127.0.0.1:{target.port}/admin"))
    settings.FLOWMATRX_ALLOW_ADDRESSES = [f"127.0.0.1:{entry.port}"]
    with pytest.raises(AddressRefused, match=r"refused: 127\.0\.0\.1 is a loopback address"):
        await get(f"{entry.url}/start")
    assert len(entry.requests) == 1
    assert target.requests == []


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata address"),
        ("http://metadata.google.internal/", "metadata.google.internal is a cloud metadata"),
        ("http://[::ffff:10.0.0.1]/", "is a private address"),
        ("http://2130706433/", "2130706433 (127.0.0.1) is a loopback address"),
    ],
)
async def test_every_redirect_hop_is_checked(start, settings, location, reason):
    entry = start(redirect_to(location))
    settings.FLOWMATRX_ALLOW_ADDRESSES = [f"127.0.0.1:{entry.port}"]
    with pytest.raises(AddressRefused) as caught:
        await get(f"{entry.url}/start")
    assert reason in str(caught.value)


async def test_allowed_redirects_are_followed(start, settings):
    entry = start(redirect_to("/final"))
    settings.FLOWMATRX_ALLOW_ADDRESSES = [f"127.0.0.1:{entry.port}"]
    output = await get(f"{entry.url}/start")
    assert output["body"] == {"final": True}
    assert [r.path for r in entry.requests] == ["/start", "/final"]


# -- resolution -------------------------------------------------------------------------------


@pytest.fixture
def resolver(monkeypatch):
    """Replaces DNS: `answers[host]` is a list of answers, one used per lookup."""
    answers: dict[str, list] = {}
    lookups: list[str] = []

    async def fake_getaddrinfo(host, port):
        lookups.append(host)
        answer = answers[host].pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(netguard, "_getaddrinfo", fake_getaddrinfo)
    return answers, lookups


async def test_dns_rebinding_cannot_slip_between_check_and_connect(start, settings, resolver):
    """The first lookup answers an allowed address, later ones the metadata address: the
    connection goes to exactly the address that was checked, resolved once."""
    server = start(echo)
    settings.FLOWMATRX_ALLOW_ADDRESSES = [f"127.0.0.1:{server.port}"]
    answers, lookups = resolver
    answers["rebind.test"] = [["127.0.0.1"], ["169.254.169.254"]]

    output = await get(f"http://rebind.test:{server.port}/data")
    assert output["body"]["headers"]["host"] == f"rebind.test:{server.port}"
    assert lookups == ["rebind.test"]

    with pytest.raises(AddressRefused, match=r"rebind\.test \(169\.254\.169\.254\) is a cloud"):
        await get(f"http://rebind.test:{server.port}/data")
    assert len(server.requests) == 1


async def test_any_private_answer_refuses_the_host(resolver):
    answers, _ = resolver
    answers["mixed.test"] = [["93.184.215.14", "10.1.2.3"]]
    with pytest.raises(AddressRefused, match=r"mixed\.test \(10\.1\.2\.3\) is a private address"):
        await get("http://mixed.test/")


async def test_a_name_that_does_not_resolve_is_retryable(resolver):
    answers, _ = resolver
    answers["nowhere.test"] = [socket.gaierror(socket.EAI_NONAME, "Name or service not known")]
    with pytest.raises(StepError, match=r"could not resolve nowhere\.test") as caught:
        await get("http://nowhere.test/")
    assert caught.value.retryable

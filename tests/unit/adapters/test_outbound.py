"""The one outbound policy: normalised before it is checked, resolved, link-local and metadata
addresses always refused, loopback only when allowed, a team's URLs only under the allow-list,
and the connected socket checked again. Receivers on 127.0.0.1 count what reached them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from rollwise.adapters.outbound import OutboundPolicy, OutboundRefused, normalise


class Counting(BaseHTTPRequestHandler):
    paths: list[str] = []

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        Counting.paths.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")


@pytest.fixture
def receiver() -> Iterator[str]:
    Counting.paths = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Counting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("http://slo.example.com/api/../admin/secrets", "http://slo.example.com/admin/secrets"),
        ("http://slo.example.com/api/%2e%2e/admin", "http://slo.example.com/admin"),
        ("http://slo.example.com/api/%2E%2E/%2e/admin", "http://slo.example.com/admin"),
        ("http://slo.example.com/api/./v1/", "http://slo.example.com/api/v1/"),
        ("http://slo.example.com/../../etc", "http://slo.example.com/etc"),
        ("HTTP://SLO.Example.COM:80/a?x=1#frag", "http://slo.example.com/a?x=1"),
        ("https://slo.example.com:8443", "https://slo.example.com:8443/"),
        ("http://slo.example.com./a", "http://slo.example.com/a"),
        ("http://[::1]:9090/q", "http://[::1]:9090/q"),
    ],
)
def test_urls_are_normalised_before_they_are_checked(url: str, normal: str) -> None:
    assert normalise(url).url == normal


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://user:tok3n@slo.example.com/", "user or password"),
        ("http://slo.example.com@169.254.169.254/", "user or password"),
        ("ftp://slo.example.com/", "only http and https"),
        ("http://slo.example.com/a\\..\\admin", "backslash"),
        ("http:///nohost", "no host"),
        ("http://slo.example.com:99999/", "does not parse"),
    ],
)
def test_urls_that_cannot_be_called_are_refused(url: str, why: str) -> None:
    with pytest.raises(OutboundRefused, match=why):
        normalise(url)


def test_the_dot_segment_path_is_checked_as_it_would_be_requested(receiver: str) -> None:
    policy = OutboundPolicy((receiver + "/api/",), allow_loopback=True)

    with pytest.raises(OutboundRefused, match="not under a prefix"):
        policy.check(receiver + "/api/../admin/secrets", platform=False, what="MetricGate shop/x")

    assert policy.check(receiver + "/api/v1", platform=False, what="x").path == "/api/v1"
    assert Counting.paths == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://169.254.170.2/v2/credentials",
        "http://0.0.0.0:8080/",
        "http://100.100.100.200/latest/meta-data/",
    ],
)
@pytest.mark.parametrize("platform", [True, False])
def test_link_local_and_metadata_addresses_are_refused_whoever_wrote_the_url(
    url: str, platform: bool
) -> None:
    everything = OutboundPolicy(("http://*.google.internal:*/", "http://169.254.169.254/"))

    with pytest.raises(OutboundRefused, match=r"metadata|link-local"):
        everything.check(url, platform=platform, what="webhook w")


def test_a_name_resolving_to_a_metadata_address_is_refused() -> None:
    policy = OutboundPolicy(
        ("http://hooks.example.com/",), resolver=lambda host, port: ["169.254.169.254"]
    )

    with pytest.raises(OutboundRefused, match=r"169\.254\.169\.254"):
        policy.check("http://hooks.example.com/x", platform=False, what="webhook w")


def test_loopback_is_refused_unless_the_operator_allows_it(receiver: str) -> None:
    with pytest.raises(OutboundRefused, match="loopback"):
        OutboundPolicy().check(receiver + "/", platform=True, what="ClusterMetricGate g")

    allowed = OutboundPolicy(allow_loopback=True).check(receiver, platform=True, what="g")

    assert allowed.url == receiver + "/"


def test_a_teams_url_must_be_under_an_allowed_prefix_and_says_how_to_get_there() -> None:
    policy = OutboundPolicy(("https://hooks.example.com/team-a/",))

    with pytest.raises(OutboundRefused) as refused:
        policy.check("https://internal.example.com/x?token=s3cr3tT0ken", platform=False, what="w")

    assert "outbound.allow: https://hooks.example.com/team-a/" in str(refused.value)
    assert "s3cr3tT0ken" not in str(refused.value) and "/x" not in str(refused.value)


def test_the_connected_peer_is_checked_again_whatever_dns_said(receiver: str) -> None:
    """A name checked as public that connects to loopback (DNS rebinding) is cut at connect."""
    policy = OutboundPolicy(allow_loopback=False)
    session = policy.session()

    with pytest.raises(requests.ConnectionError, match="refused by policy"):
        session.get(receiver + "/rebound", timeout=2)

    assert Counting.paths == []


def test_the_policys_session_follows_no_redirect_even_when_asked(receiver: str) -> None:
    class Redirect(Counting):
        def do_GET(self) -> None:
            Counting.paths.append(self.path)
            self.send_response(302)
            self.send_header("Location", "/followed")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        session = OutboundPolicy(allow_loopback=True).session()
        answer = session.get(f"http://127.0.0.1:{server.server_address[1]}/r", timeout=2)
    finally:
        server.shutdown()
        server.server_close()

    assert answer.status_code == 302 and Counting.paths == ["/r"]

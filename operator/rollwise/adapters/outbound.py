"""The one policy for every URL the operator calls: web gates, Prometheus addresses, lifecycle
webhooks and notifications, and the fleet hub's member API servers.

1. The URL is normalised before it is checked, and the normalised URL is what is requested:
   http or https only, no userinfo (credentials come from Secret references), host lowercased,
   port made explicit, dot-segments resolved (`/api/../admin` is `/admin`, also when written
   `%2e%2e`), no backslash, no fragment.
2. Who wrote it decides what it may name. A ClusterMetricGate and a fleet member's kubeconfig
   Secret (written by the fleet's owners on the hub) are the platform's: any host. A
   namespaced MetricGate and a ProgressiveService's webhooks and notifications are a team's:
   only URLs under a prefix of the operator's outbound allow-list (`--outbound-allow`, chart
   value `outbound.allow`; `--web-gate-allow` is the same list).
3. The host is resolved and every address checked, and checked again on the connected socket
   (so a DNS answer that changes between the check and the connect gains nothing):
   link-local and cloud metadata addresses (169.254.0.0/16, fe80::/10, fd00:ec2::254, ...) and
   metadata host names are always refused; loopback only with `--outbound-allow-loopback`
   (the test harness sets it, a chart never needs it). Cluster-internal and private addresses
   are reached only by a platform gate or through an allow-list entry: the platform named them.
4. No proxy from the environment and no redirect: a 3xx is an answer, never followed.

Refusals are `OutboundRefused` with a fixed text that names the destination only as
`scheme://host:port/…` (see core.redaction).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError
from urllib3.poolmanager import PoolManager

from rollwise.core.redaction import describe_url

DEFAULT_PORTS = {"http": 80, "https": 443}
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Always refused, whoever wrote the URL: where a cloud's instance metadata and credentials live.
METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.com",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
        "metadata.platformequinix.com",
    }
)
_REFUSED_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.0.0/16",  # IPv4 link-local: AWS, GCP, Azure, OpenStack metadata
        "fe80::/10",  # IPv6 link-local
        "fd00:ec2::254/128",  # AWS metadata over IPv6
        "100.100.100.200/32",  # Alibaba Cloud metadata
        "0.0.0.0/8",  # "this host": reaches loopback services on Linux
        "::/128",
        "224.0.0.0/4",  # multicast
        "ff00::/8",
        "255.255.255.255/32",
    )
)
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
_DOT_SEGMENT = re.compile(r"%2e", re.IGNORECASE)


class OutboundRefused(ValueError):
    """The operator will not call this URL; the message says why and what to change."""


@dataclass(frozen=True)
class AllowedPrefix:
    """One allow-list entry: scheme, host (`*.` allows subdomains), port (`*`: any), path."""

    scheme: str
    host: str
    port: int | None  # None: any port
    path: str

    @classmethod
    def parse(cls, text: str) -> AllowedPrefix:
        raw = text.strip()
        any_port = re.search(r"^[a-z]+://[^/]+:\*(/|$)", raw) is not None
        parts = urlsplit(raw.replace(":*", "", 1) if any_port else raw)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname or port == -1:
            raise ValueError(
                f"--outbound-allow {text!r}: give a URL prefix such as "
                "https://slo.example.com/api/, http://*.monitoring.svc:9090/ or "
                "http://127.0.0.1:*/"
            )
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError(
                f"--outbound-allow {text!r}: no user, query or fragment in an allowed prefix"
            )
        host = parts.hostname.lower().rstrip(".")
        if "*" in host.removeprefix("*."):
            raise ValueError(f"--outbound-allow {text!r}: only a leading '*.' wildcard is allowed")
        return cls(
            scheme=parts.scheme,
            host=host,
            port=None if any_port else port or DEFAULT_PORTS[parts.scheme],
            path=remove_dot_segments(parts.path or "/"),
        )

    def allows(self, url: NormalURL) -> bool:
        if url.scheme != self.scheme or (self.port is not None and url.port != self.port):
            return False
        if self.host.startswith("*."):
            if not url.host.endswith(self.host[1:]):
                return False
        elif url.host != self.host:
            return False
        # A prefix ending in "/" matches below it; one without matches itself and below it.
        prefix = self.path
        return url.path == prefix or url.path.startswith(
            prefix if prefix.endswith("/") else prefix + "/"
        )


@dataclass(frozen=True)
class NormalURL:
    scheme: str
    host: str
    port: int
    path: str
    query: str

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = DEFAULT_PORTS[self.scheme] == self.port
        netloc = host if default else f"{host}:{self.port}"
        return urlunsplit((self.scheme, netloc, self.path, self.query, ""))

    @property
    def shown(self) -> str:
        return describe_url(self.url)


def remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4, with `%2e` read as `.` (servers do): `/a/./b/../c` is `/a/c`."""
    segments = _DOT_SEGMENT.sub(".", path).split("/")
    out: list[str] = []
    for segment in segments[1:] if path.startswith("/") else segments:
        if segment == "..":
            if out:
                out.pop()
        elif segment != ".":
            out.append(segment)
    trailing = segments[-1] in (".", "..")
    return "/" + "/".join(out) + ("/" if trailing and out else "")


def normalise(url: str) -> NormalURL:
    """The URL as it will be requested; OutboundRefused for one that cannot be called."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as err:
        raise OutboundRefused(f"the URL does not parse ({err})") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise OutboundRefused("only http and https URLs are called")
    if "@" in parts.netloc:
        raise OutboundRefused(
            "a URL may not carry a user or password: put the credential in a Secret and name "
            "it with secretRef"
        )
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise OutboundRefused("the URL has no host")
    try:
        host = host.encode("idna").decode("ascii").lower() if not _is_ip(host) else host
    except UnicodeError:
        raise OutboundRefused("the URL's host is not a valid name") from None
    if "\\" in parts.path or any(ord(c) < 0x21 for c in parts.path + parts.query):
        raise OutboundRefused("the URL's path has a backslash, space or control character")
    return NormalURL(
        scheme=scheme,
        host=host.lower(),
        port=port or DEFAULT_PORTS[scheme],
        path=remove_dot_segments(unquote_dots(parts.path) or "/"),
        query=parts.query,
    )


def unquote_dots(path: str) -> str:
    """Only `%2e` decoded (a dot-segment in disguise); every other escape kept as written."""
    return _DOT_SEGMENT.sub(".", path)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (getaddrinfo, as the connection will)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


@dataclass
class OutboundPolicy:
    """The allow-list, whether loopback may be called, and the checks (see the module doc)."""

    allow: tuple[str, ...] = ()
    allow_loopback: bool = False
    resolver: Callable[[str, int], list[str]] = resolve
    prefixes: tuple[AllowedPrefix, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.allow = tuple(e.strip() for e in self.allow if e.strip())
        self.prefixes = tuple(AllowedPrefix.parse(e) for e in self.allow)

    def address_refusal(self, address: str) -> str | None:
        """Why a connection to this IP address is refused, or None."""
        try:
            ip: IPAddress = ipaddress.ip_address(address.split("%")[0])
        except ValueError:
            return "its address is not an IP address"
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in _REFUSED_NETWORKS):
            return (
                f"it resolves to {ip}, a link-local, metadata or unspecified address, which "
                "the operator never calls"
            )
        if any(ip in net for net in _LOOPBACK) and not self.allow_loopback:
            return (
                f"it resolves to {ip}, a loopback address "
                "(operator setting --outbound-allow-loopback is off)"
            )
        return None

    def check(self, url: str, *, platform: bool, what: str) -> NormalURL:
        """The normalised URL to request; OutboundRefused, naming `what` and saying why, when
        it may not be called. `platform`: written by the platform (a ClusterMetricGate)."""
        try:
            normal = normalise(url)
        except OutboundRefused as err:
            raise OutboundRefused(f"{what}: URL {describe_url(url)} refused: {err}") from None
        shown = normal.shown
        if normal.host in METADATA_HOSTS:
            raise OutboundRefused(
                f"{what}: URL {shown} refused: a cloud metadata host is never called"
            )
        if _is_ip(normal.host):  # an address written as one: refused for what it is, first
            refusal = self.address_refusal(normal.host)
            if refusal is not None:
                raise OutboundRefused(f"{what}: URL {shown} refused: {refusal}")
        if not platform and not any(p.allows(normal) for p in self.prefixes):
            allowed = ", ".join(self.allow) or "none"
            raise OutboundRefused(
                f"{what}: URL {shown} refused: it is not under a prefix of the operator's "
                f"outbound allow-list (--outbound-allow / chart value outbound.allow: {allowed}); "
                "ask the platform team to allow it"
                + (", or use a ClusterMetricGate" if "MetricGate" in what else "")
            )
        try:
            addresses = self.resolver(normal.host, normal.port)
        except (OSError, UnicodeError):
            raise OutboundRefused(f"{what}: URL {shown}: its host does not resolve") from None
        for address in addresses:
            refusal = self.address_refusal(address)
            if refusal is not None:
                raise OutboundRefused(f"{what}: URL {shown} refused: {refusal}")
        return normal

    def session(self, pool_size: int = 8) -> requests.Session:
        """A Session that checks every connected peer against this policy, uses no proxy from
        the environment and follows no redirect."""
        session = NoRedirectSession()
        session.trust_env = False
        adapter = GuardedAdapter(
            self.address_refusal, pool_connections=4, pool_maxsize=max(1, pool_size)
        )
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session


class NoRedirectSession(requests.Session):
    """A Session for which no answer is a redirect: a 3xx is returned as it is, whatever a
    caller (a client library) asks for."""

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        return None


class GuardedAdapter(HTTPAdapter):
    """requests' adapter whose connections check the peer they connected to."""

    def __init__(self, refusal: Callable[[str], str | None], **kwargs: Any) -> None:
        self._refusal = refusal
        kwargs.setdefault("max_retries", 0)
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        guard_pool_manager(self.poolmanager, self._refusal)


def guard_pool_manager(manager: PoolManager, refusal: Callable[[str], str | None]) -> None:
    """Make every connection of a urllib3 PoolManager check the peer it connected to (requests'
    sessions above, the Kubernetes client of the fleet hub's members): a refused address is a
    NewConnectionError before a byte is sent."""

    def guarded(base: type[HTTPConnection]) -> type[HTTPConnection]:
        class Guarded(base):  # type: ignore[valid-type,misc]
            def _new_conn(self) -> socket.socket:
                sock: socket.socket = super()._new_conn()
                why = refusal(str(sock.getpeername()[0]))
                if why is not None:
                    sock.close()
                    raise NewConnectionError(self, f"connection refused by policy: {why}")
                return sock

        return Guarded

    class Pool(HTTPConnectionPool):
        ConnectionCls = guarded(HTTPConnection)

    class TLSPool(HTTPSConnectionPool):
        ConnectionCls = guarded(HTTPSConnection)  # type: ignore[assignment]

    manager.pool_classes_by_scheme = {"http": Pool, "https": TLSPool}
    manager.key_fn_by_scheme = dict(manager.key_fn_by_scheme)


def parse_allow_list(entries: Iterable[str]) -> tuple[str, ...]:
    """Entries as given (repeatable, comma-separated); ValueError naming a bad one."""
    out = tuple(e.strip() for given in entries for e in str(given).split(",") if e.strip())
    for entry in out:
        AllowedPrefix.parse(entry)
    return out


def connection_failure(err: Exception) -> str:
    """A fixed text for a failed request: requests' own text names the full URL, which can be
    the credential."""
    text = f"{type(err).__name__} {err}"
    for marker, reason in (
        ("connection refused by policy", "the outbound policy refused the address it connected to"),
        ("Connection refused", "connection refused"),
        ("Failed to resolve", "its host does not resolve"),
        ("Name or service not known", "its host does not resolve"),
        ("No route to host", "no route to host"),
        ("Read timed out", "read timed out"),
        ("SSLError", "TLS failed"),
        ("ConnectTimeout", "connecting timed out"),
    ):
        if marker in text:
            return reason
    return f"{type(err).__name__} (details not shown)"

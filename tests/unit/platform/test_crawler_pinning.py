"""The crawler connects to the address it checked, on every redirect hop (fake resolver).

A fake resolver answers for made-up host names; a recording backend notes the address each
connection was opened to and sends it to a local HTTP server, so the tests see exactly what
the crawler would have contacted without any real DNS or network.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpcore
import pytest

from percept.search.scrape import (
    BlockedAddress,
    Crawler,
    PinnedBackend,
    ScrapedImage,
    ScrapeLimits,
    check_url,
    pinned_transport,
)
from tests.unit.search.conftest import Site, serve_site

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"
       b"\x00\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef"
       b"\x00\x00\x00\x00IEND\xaeB`\x82")


@pytest.fixture
def server() -> Iterator[Site]:
    """A local site; ``requests`` records the (Host header, path) of every request."""
    yield from serve_site(Site())


class FakeResolver:
    """host → successive answers (the last one repeats); counts lookups."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        seq = self.answers[host]
        return seq[min(len(seq) - 1, self.calls.count(host) - 1)]


class Recorder(httpcore.AsyncNetworkBackend):
    """Notes the address each connection is opened to, then connects to the local server."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connected: list[str] = []
        self.real = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109
                          local_address: str | None = None, socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        self.connected.append(host)
        return await self.real.connect_tcp("127.0.0.1", self.port, timeout=timeout)

    async def sleep(self, seconds: float) -> None:
        await self.real.sleep(seconds)


def crawl(start: str, resolver: FakeResolver, recorder: Recorder, **limits: Any) -> tuple[list[ScrapedImage], Any]:
    kept: list[ScrapedImage] = []

    async def keep(image: ScrapedImage) -> bool:
        kept.append(image)
        return True

    lim = ScrapeLimits(**{"min_image_bytes": 10, **limits})

    async def run() -> Any:


        transport = pinned_transport(lim.allow_private_networks, resolver, recorder)
        return await Crawler(lim, transport=transport).crawl([start], keep)

    return kept, asyncio.run(run())


PUBLIC, PUBLIC2, PRIVATE = "93.184.216.34", "151.101.1.69", "10.1.2.3"


def test_connection_goes_to_the_checked_address_with_the_host_header_kept(server: Site) -> None:
    server.routes["/"] = (200, "text/html", b'<img src="/a.png">', {})
    server.routes["/a.png"] = (200, "image/png", PNG, {})
    resolver = FakeResolver({"shop.test": [[PUBLIC]]})
    recorder = Recorder(server.port)
    kept, report = crawl(f"http://shop.test:{server.port}/", resolver, recorder)
    assert [k.url.rsplit("/", 1)[-1] for k in kept] == ["a.png"], report.skipped
    assert set(recorder.connected) == {PUBLIC}  # never the name: the checked address itself
    assert {host for host, _ in server.requests} == {f"shop.test:{server.port}"}


def test_dns_rebinding_after_the_check_cannot_reach_a_private_address(server: Site) -> None:
    # First answer public, every later answer private: the classic rebinding attack.
    server.routes["/"] = (200, "text/html", b'<img src="/a.png">', {})
    server.routes["/a.png"] = (200, "image/png", PNG, {})
    resolver = FakeResolver({"rebind.test": [[PUBLIC], [PRIVATE]]})
    recorder = Recorder(server.port)
    kept, report = crawl(f"http://rebind.test:{server.port}/", resolver, recorder)
    assert PRIVATE not in recorder.connected
    assert recorder.connected[0] == PUBLIC
    # Any lookup answering the private address was refused before connecting.
    for skipped in report.skipped:
        assert "non-public address" in skipped["reason"]
    assert len(kept) + len(report.skipped) == 1


def test_every_redirect_hop_is_resolved_and_checked_again(server: Site) -> None:
    server.routes["/"] = (302, "text/html", b"", {"Location": f"http://inner.test:{server.port}/secret"})
    server.routes["/secret"] = (200, "text/html", b'<img src="/a.png">', {})
    resolver = FakeResolver({"outer.test": [[PUBLIC]], "inner.test": [[PRIVATE]]})
    recorder = Recorder(server.port)
    kept, report = crawl(f"http://outer.test:{server.port}/", resolver, recorder)
    assert kept == [] and report.pages == 0
    assert "non-public address (10.1.2.3)" in report.skipped[0]["reason"]
    assert recorder.connected == [PUBLIC]  # the private hop was never connected to
    assert [path for _, path in server.requests] == ["/"]
    assert resolver.calls == ["outer.test", "inner.test"]


def test_a_redirect_to_a_public_host_is_followed_and_pinned(server: Site) -> None:
    server.routes["/"] = (301, "text/html", b"", {"Location": f"http://cdn.test:{server.port}/page"})
    server.routes["/page"] = (200, "text/html", b'<img src="/a.png">', {})
    server.routes["/a.png"] = (200, "image/png", PNG, {})
    resolver = FakeResolver({"www.test": [[PUBLIC]], "cdn.test": [[PUBLIC2]]})
    recorder = Recorder(server.port)
    kept, _ = crawl(f"http://www.test:{server.port}/", resolver, recorder)
    assert [k.url for k in kept] == [f"http://cdn.test:{server.port}/a.png"]
    assert recorder.connected[:2] == [PUBLIC, PUBLIC2]
    assert (f"cdn.test:{server.port}", "/a.png") in server.requests


def test_one_private_address_among_several_refuses_the_host() -> None:
    backend = PinnedBackend(False, FakeResolver({"mixed.test": [[PUBLIC, "127.0.0.1"]]}))
    with pytest.raises(BlockedAddress, match="127.0.0.1"):
        asyncio.run(backend.addresses("mixed.test", 80))
    with pytest.raises(BlockedAddress):
        asyncio.run(backend.addresses("[::1]", 80))  # literal addresses are checked too
    assert asyncio.run(PinnedBackend(True, FakeResolver({"x.test": [["127.0.0.1"]]})).addresses("x.test", 80)) == ["127.0.0.1"]


def test_check_url_uses_the_same_policy() -> None:
    resolver = FakeResolver({"meta.test": [["169.254.169.254"]]})
    with pytest.raises(BlockedAddress):
        asyncio.run(check_url("http://meta.test/latest", False, resolver))
    with pytest.raises(ValueError):
        asyncio.run(check_url("gopher://meta.test/", True, resolver))

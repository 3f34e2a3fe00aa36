"""A small, careful HTTP crawler: start pages → image links → image bytes.

Limits on pages, images, bytes, redirects and time; only ``http``/``https``; hosts that
resolve to private, loopback, link-local or reserved addresses are refused unless
``allow_private_networks`` (tests serve pages from 127.0.0.1). Every redirect hop is
checked again.

The check and the connection use one resolution: :class:`PinnedBackend` resolves the host,
checks every address, and opens the TCP connection to the checked address itself, while
the URL (hence the ``Host`` header and the TLS SNI/certificate name) keeps the host name.
A DNS answer that changes between the check and the connection (rebinding) therefore
cannot steer the crawler to an address it did not check.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

import httpcore
import httpx
from httpcore import AsyncNetworkBackend, AsyncNetworkStream
from pydantic import BaseModel, Field

from percept.search.images import image_format

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp")
ALLOWED_FORMATS = ("png", "jpeg", "gif", "webp", "bmp")


class ScrapeLimits(BaseModel):
    """How far and how much one crawl may go (``service_config.search.scrape``)."""

    max_pages: int = Field(20, ge=1, le=1000)
    max_depth: int = Field(1, ge=0, le=5, description="link hops from a start page")
    max_images: int = Field(200, ge=1, le=10_000)
    max_image_bytes: int = Field(10 * 2**20, ge=1024)
    min_image_bytes: int = Field(64, ge=0)
    max_page_bytes: int = Field(2 * 2**20, ge=1024)
    timeout_s: float = Field(10.0, gt=0, le=120)
    max_redirects: int = Field(5, ge=0, le=20)
    same_host: bool = Field(True, description="follow links only on the start page's host")
    allow_private_networks: bool = False
    concurrency: int = Field(4, ge=1, le=32)
    user_agent: str = "PerceptImageSearch/0.1"


class BlockedAddress(Exception):
    """The URL's host resolves to an address the crawler may not contact."""


@dataclass
class ScrapedImage:
    url: str
    page_url: str
    data: bytes
    content_type: str
    format: str


@dataclass
class CrawlReport:
    pages: int = 0
    images: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)

    def skip(self, url: str, reason: str) -> None:
        if len(self.skipped) < 200:
            self.skipped.append({"url": url, "reason": reason})


class LinkParser(HTMLParser):
    """Collects image URLs (img/srcset/og:image/links to image files) and page links."""

    def __init__(self, base: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base = base
        self.images: list[str] = []
        self.links: list[str] = []

    def _add(self, target: list[str], raw: str | None) -> None:
        if raw and not raw.strip().lower().startswith(("data:", "javascript:", "mailto:")):
            target.append(urldefrag(urljoin(self.base, raw.strip()))[0])

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "base" and a.get("href"):
            self.base = urljoin(self.base, a["href"] or "")
        elif tag == "img":
            self._add(self.images, a.get("src") or a.get("data-src"))
            self._srcset(a.get("srcset"))
        elif tag == "source":
            self._srcset(a.get("srcset"))
        elif tag == "meta" and (a.get("property") or a.get("name")) in ("og:image", "twitter:image"):
            self._add(self.images, a.get("content"))
        elif tag == "a":
            href = a.get("href")
            if href and urlsplit(href).path.lower().endswith(IMAGE_EXTENSIONS):
                self._add(self.images, href)
            else:
                self._add(self.links, href)

    def _srcset(self, value: str | None) -> None:
        for part in (value or "").split(","):
            url = part.strip().split(" ")[0]
            self._add(self.images, url or None)


def parse_links(html: str, base: str) -> tuple[list[str], list[str]]:
    """(image URLs, page URLs) found in a page, absolute, in order, without duplicates."""
    parser = LinkParser(base)
    parser.feed(html)
    return list(dict.fromkeys(parser.images)), list(dict.fromkeys(parser.links))


def address_allowed(address: str) -> bool:
    """Public unicast addresses only."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved
        or ip.is_multicast or ip.is_unspecified
    )


Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address of ``host`` from the system resolver (in a thread)."""
    infos = await asyncio.to_thread(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_scheme(url: str) -> str:
    """The URL's host; ValueError unless the URL is http(s) with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"only http(s) URLs with a host can be scraped: {url!r}")
    return parts.hostname


async def check_url(url: str, allow_private: bool, resolver: Resolver | None = None) -> None:
    """Raise :class:`BlockedAddress` (or ValueError) unless the URL may be fetched.

    An early answer for callers; the crawler itself relies on the check made when each
    connection opens (:class:`PinnedBackend`), which is the one that cannot be raced.
    """
    host = check_scheme(url)
    await PinnedBackend(allow_private, resolver).addresses(host, urlsplit(url).port or 80)


class PinnedBackend(AsyncNetworkBackend):
    """httpcore network backend: resolve once, check every address, connect to a checked one.

    ``resolver`` and ``inner`` are injectable (tests use a fake resolver and a recording
    backend); the defaults are the system resolver and httpcore's own backend.
    """

    def __init__(
        self,
        allow_private: bool,
        resolver: Resolver | None = None,
        inner: AsyncNetworkBackend | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.resolver = resolver or system_resolver
        self.inner = inner or httpcore.AnyIOBackend()

    async def addresses(self, host: str, port: int) -> list[str]:
        """The checked addresses of ``host``: refused as a whole if any one is not public."""
        host = host.strip("[]")
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
            found = [host]
        except ValueError:
            found = await self.resolver(host, port)
        if not found:
            raise BlockedAddress(f"{host} does not resolve")
        if not self.allow_private:
            for address in found:
                if not address_allowed(address):
                    raise BlockedAddress(f"{host} resolves to a non-public address ({address})")
        return found

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> AsyncNetworkStream:
        last: Exception | None = None
        for address in await self.addresses(host, port):
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None  # noqa: ASYNC109
    ) -> AsyncNetworkStream:
        raise BlockedAddress("unix sockets are never crawled")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def pinned_transport(allow_private: bool, resolver: Resolver | None = None,
                     inner: AsyncNetworkBackend | None = None) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose every connection goes through a :class:`PinnedBackend`."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx does not expose the backend; its pool is public httpcore API built the same way.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        network_backend=PinnedBackend(allow_private, resolver, inner),
    )
    return transport


class Crawler:
    """Crawls start pages breadth-first and hands each accepted image to ``on_image``."""

    def __init__(
        self,
        limits: ScrapeLimits,
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.limits = limits
        self.transport = transport
        self.resolver = resolver

    async def _get(self, client: httpx.AsyncClient, url: str, max_bytes: int) -> tuple[str, httpx.Response, bytes]:
        """GET with per-hop address checks and a byte limit; returns (final URL, response, body)."""
        for _ in range(self.limits.max_redirects + 1):
            check_scheme(url)  # the address of every hop is checked when its connection opens
            async with client.stream("GET", url) as resp:
                if resp.is_redirect and "location" in resp.headers:
                    url = urldefrag(urljoin(url, resp.headers["location"]))[0]
                    continue
                declared = resp.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise ValueError(f"larger than {max_bytes} bytes")
                chunks, total = [], 0
                async for chunk in resp.aiter_bytes():
                    total += len(chunk)
                    if total > max_bytes:
                        raise ValueError(f"larger than {max_bytes} bytes")
                    chunks.append(chunk)
                return url, resp, b"".join(chunks)
        raise ValueError("too many redirects")

    async def crawl(
        self,
        start_urls: list[str],
        on_image: Callable[[ScrapedImage], Awaitable[bool]],
        progress: Callable[[float, str], Awaitable[None]] | None = None,
    ) -> CrawlReport:
        """Visit pages and fetch their images; ``on_image`` returns True when it kept one."""
        lim = self.limits
        report = CrawlReport()
        seen_pages: set[str] = set()
        seen_images: set[str] = set()
        queue: list[tuple[str, int, str]] = [(u, 0, urlsplit(u).hostname or "") for u in start_urls]
        timeout = httpx.Timeout(lim.timeout_s)
        headers = {"User-Agent": lim.user_agent, "Accept": "text/html,image/*;q=0.9,*/*;q=0.5"}
        sem = asyncio.Semaphore(lim.concurrency)
        async with httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, headers=headers, trust_env=False,
            transport=self.transport or pinned_transport(lim.allow_private_networks, self.resolver),
        ) as client:

            async def fetch_image(url: str, page: str) -> None:
                async with sem:
                    if report.images >= lim.max_images:
                        return
                    try:
                        final, resp, body = await self._get(client, url, lim.max_image_bytes)
                    except (BlockedAddress, ValueError, httpx.HTTPError) as exc:
                        report.skip(url, f"{type(exc).__name__}: {exc}")
                        return
                    kind = resp.headers.get("content-type", "").split(";")[0].strip().lower()
                    fmt = image_format(body)
                    if resp.status_code != 200:
                        report.skip(url, f"HTTP {resp.status_code}")
                    elif len(body) < lim.min_image_bytes:
                        report.skip(url, "too small")
                    elif fmt not in ALLOWED_FORMATS or not (kind.startswith("image/") or kind in ("", "application/octet-stream")):
                        report.skip(url, f"not an accepted image ({kind or 'no type'}, {fmt or 'unreadable'})")
                    elif report.images < lim.max_images and await on_image(ScrapedImage(final, page, body, kind, fmt)):
                        report.images += 1

            while queue and report.pages < lim.max_pages and report.images < lim.max_images:
                url, depth, host = queue.pop(0)
                if url in seen_pages:
                    continue
                seen_pages.add(url)
                if urlsplit(url).path.lower().endswith(IMAGE_EXTENSIONS):
                    if url not in seen_images:
                        seen_images.add(url)
                        await fetch_image(url, url)
                    continue
                try:
                    final, resp, body = await self._get(client, url, lim.max_page_bytes)
                except (BlockedAddress, ValueError, httpx.HTTPError) as exc:
                    report.skip(url, f"{type(exc).__name__}: {exc}")
                    continue
                kind = resp.headers.get("content-type", "").split(";")[0].strip().lower()
                if resp.status_code != 200:
                    report.skip(url, f"HTTP {resp.status_code}")
                    continue
                if kind.startswith("image/"):
                    seen_images.add(url)
                    await fetch_image(url, url)
                    continue
                if kind not in ("text/html", "application/xhtml+xml", ""):
                    report.skip(url, f"not a page ({kind})")
                    continue
                report.pages += 1
                images, links = parse_links(body.decode(resp.encoding or "utf-8", errors="replace"), final)
                fresh = [i for i in images if i not in seen_images]
                seen_images.update(fresh)
                await asyncio.gather(*(fetch_image(i, final) for i in fresh))
                if depth < lim.max_depth:
                    for link in links:
                        parts = urlsplit(link)
                        if parts.scheme in ("http", "https") and (not lim.same_host or parts.hostname == host):
                            queue.append((link, depth + 1, host))
                if progress is not None:
                    await progress(min(95.0, 100.0 * report.pages / lim.max_pages), f"{report.pages} pages, {report.images} images")
        return report

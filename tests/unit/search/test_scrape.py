"""The crawler against a local site: links, limits, types, and refusal of private addresses."""

from __future__ import annotations

import asyncio

import pytest

from percept.search.scrape import Crawler, ScrapedImage, ScrapeLimits, address_allowed, check_url, parse_links
from tests.unit.search.conftest import Site, shop_site


def crawl(site_url: str, **limits: object) -> tuple[list[ScrapedImage], dict]:
    kept: list[ScrapedImage] = []

    async def keep(image: ScrapedImage) -> bool:
        kept.append(image)
        return True

    options = {"allow_private_networks": True, "max_image_bytes": 200_000, **limits}
    report = asyncio.run(Crawler(ScrapeLimits(**options)).crawl([site_url + "/"], keep))
    return kept, {"pages": report.pages, "images": report.images, "skipped": report.skipped}


def test_finds_images_follows_links_and_skips_bad_files(site: Site) -> None:
    images = shop_site(site)
    kept, report = crawl(site.url)
    by_name = {k.url.rsplit("/", 1)[-1]: k for k in kept}
    assert set(by_name) == {"red.png", "cyan.jpg", "blue.png"}
    assert by_name["cyan.jpg"].format == "jpeg" and by_name["cyan.jpg"].data == images["cyan.jpg"]
    assert by_name["blue.png"].page_url.endswith("/more.html")
    assert report["pages"] == 2
    reasons = {s["url"].rsplit("/", 1)[-1]: s["reason"] for s in report["skipped"]}
    assert "not an accepted image" in reasons["fake.png"]
    assert "larger than" in reasons["huge.png"]
    assert site.hits.count("/img/red.png") == 1  # each image fetched once


def test_depth_and_image_limits(site: Site) -> None:
    shop_site(site)
    kept, report = crawl(site.url, max_depth=0)
    assert report["pages"] == 1 and {k.url.rsplit("/", 1)[-1] for k in kept} == {"red.png", "cyan.jpg"}
    kept, _ = crawl(site.url, max_images=1)
    assert len(kept) == 1


def test_loopback_is_refused_unless_allowed(site: Site) -> None:
    shop_site(site)
    kept, report = crawl(site.url, allow_private_networks=False)
    assert kept == [] and report["pages"] == 0
    assert "non-public address" in report["skipped"][0]["reason"]
    assert site.hits == []


def test_redirects_are_followed_and_checked(site: Site) -> None:
    shop_site(site)
    site.add("/go", b"", status=302, headers={"Location": "/more.html"})
    captured: list[ScrapedImage] = []

    async def keep(image: ScrapedImage) -> bool:
        captured.append(image)
        return True

    asyncio.run(Crawler(ScrapeLimits(allow_private_networks=True, max_depth=0)).crawl([site.url + "/go"], keep))
    assert {c.url.rsplit("/", 1)[-1] for c in captured} == {"blue.png", "red.png"}
    site.add("/loop", b"", status=302, headers={"Location": "/loop"})
    report = asyncio.run(Crawler(ScrapeLimits(allow_private_networks=True)).crawl([site.url + "/loop"], keep))
    assert report.skipped[0]["reason"].endswith("too many redirects")


@pytest.mark.parametrize(
    ("address", "allowed"),
    [("127.0.0.1", False), ("10.1.2.3", False), ("192.168.0.7", False), ("169.254.169.254", False),
     ("::1", False), ("0.0.0.0", False), ("fc00::1", False), ("8.8.8.8", True), ("2606:4700::1111", True)],
)
def test_address_policy(address: str, allowed: bool) -> None:
    assert address_allowed(address) is allowed


def test_only_http_urls() -> None:
    with pytest.raises(ValueError):
        asyncio.run(check_url("file:///etc/passwd", True))
    with pytest.raises(ValueError):
        asyncio.run(check_url("ftp://example.com/x.png", True))


def test_parse_links_resolves_relative_urls() -> None:
    images, links = parse_links(
        '<base href="/shop/"><img src="a.png"><img data-src="b.jpg"><source srcset="c.webp 2x">'
        '<meta property="og:image" content="https://cdn.example.com/d.png"><a href="page#top">p</a>'
        '<a href="e.JPG">e</a><a href="mailto:x@y">m</a>',
        "http://example.com/index.html",
    )
    assert images == ["http://example.com/shop/a.png", "http://example.com/shop/b.jpg",
                      "http://example.com/shop/c.webp", "https://cdn.example.com/d.png",
                      "http://example.com/shop/e.JPG"]
    assert links == ["http://example.com/shop/page"]

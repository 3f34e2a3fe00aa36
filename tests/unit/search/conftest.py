"""Fixtures of the search tests: a local web site of images, tiny ResNet/CLIP models."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.unit.search.synthetic import composite, jpeg_bytes, png_bytes
from tests.unit.search.tiny_models import build_tiny_models

Route = tuple[int, str, bytes, dict[str, str]]


class Site:
    """Routes served by a local HTTP server on 127.0.0.1 (path → status, type, body, headers).

    ``hits`` lists the paths requested, ``requests`` the (Host header, path) of each request.
    """

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: list[str] = []
        self.requests: list[tuple[str, str]] = []
        self.url = ""

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def add(self, path: str, body: bytes | str, kind: str = "text/html", status: int = 200,
            headers: dict[str, str] | None = None) -> str:
        data = body.encode() if isinstance(body, str) else body
        self.routes[path] = (status, kind, data, headers or {})
        return self.url + path


def serve_site(site: Site) -> Iterator[Site]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            site.hits.append(self.path)
            site.requests.append((self.headers.get("Host", ""), self.path))
            status, kind, body, headers = site.routes.get(self.path, (404, "text/plain", b"missing", {}))
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    site.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def site() -> Iterator[Site]:
    yield from serve_site(Site())


def shop_site(site: Site) -> dict[str, bytes]:
    """A small shop: a home page with images, a linked page, a non-image and a huge file."""
    red, _ = composite("ellipse", (220, 40, 40), seed=1)
    cyan, _ = composite("rectangle", (30, 200, 210), seed=2)
    blue, _ = composite("triangle", (40, 60, 210), seed=3)
    images = {"red.png": png_bytes(red), "cyan.jpg": jpeg_bytes(cyan), "blue.png": png_bytes(blue)}
    site.add("/img/red.png", images["red.png"], "image/png")
    site.add("/img/cyan.jpg", images["cyan.jpg"], "image/jpeg")
    site.add("/img/blue.png", images["blue.png"], "image/png")
    site.add("/img/fake.png", b"<html>" + b"not an image " * 20 + b"</html>", "image/png")
    site.add("/img/huge.png", b"\x89PNG" + b"0" * 300_000, "image/png")
    site.add("/", '<html><body><img src="/img/red.png"><img srcset="img/cyan.jpg 1x, img/fake.png 2x">'
                  '<a href="/more.html">more</a><a href="/img/huge.png">huge</a>'
                  '<img src="data:image/png;base64,AAAA"></body></html>')
    site.add("/more.html", '<html><body><img src="/img/blue.png"><img src="/img/red.png"></body></html>')
    return images


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models directory with tiny random ResNet and CLIP models (transformers format)."""
    root = tmp_path_factory.mktemp("models")
    build_tiny_models(root)
    return root

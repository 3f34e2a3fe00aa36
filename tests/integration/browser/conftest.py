"""Browser tier: the console driven in Debian's Chromium (Playwright for Python, no browser
download) against the integration tier's application (``percept_app``, one Serve app for both).

Screenshots go to ``test-artifacts/screenshots/`` (git-ignored) and the time each flow takes to
``test-artifacts/browser-timings.json``; both are kept after the run.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

logger = logging.getLogger("percept.browser")

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = Path(os.environ.get("PERCEPT_TEST_ARTIFACTS", ROOT / "test-artifacts"))
SHOTS = ARTIFACTS / "screenshots"
TIMINGS = ARTIFACTS / "browser-timings.json"
CHROMIUM = os.environ.get("PERCEPT_CHROMIUM", "/usr/bin/chromium")
# Debian's chromium, headless and quiet: no sandbox (root in CI), no GPU, nothing phoned home.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync",
                 # a fake microphone (a beeping tone), allowed without a prompt: recording in the browser
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

_timings: dict[str, float] = {}


@pytest.fixture(scope="package")
def chromium() -> Iterator[Any]:
    """One browser for the browser tests. Package-scoped: Playwright's sync API marks an event
    loop as running in the main thread while it lives, so every later ``asyncio.run`` of the
    test session would fail if it outlived this package."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (scripts/install.sh installs Debian's chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    if _timings:
        previous = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else {}
        TIMINGS.write_text(json.dumps({**previous, **_timings}, indent=2, sort_keys=True) + "\n")


@dataclass
class Console:
    """One browser tab on the console, with the helpers every flow uses."""

    page: Any
    url: str
    name: str
    errors: list[str] = field(default_factory=list)
    shots: list[Path] = field(default_factory=list)

    def open(self, view: str = "", expect: str | None = None) -> None:
        """Go to a console page and wait until it is rendered (``expect``: the page it ends on
        when the console sends the visitor elsewhere, e.g. to sign in)."""
        self.page.goto(f"{self.url}/ui/#/{view}")
        # the shell marks <main> with the page it finished rendering: a heading left from the
        # page before (same document, only the hash changed) does not count
        page = expect or view.split("?")[0] or "home"
        self.page.wait_for_selector(f'main[data-page="{page}"] h1')

    def shot(self, step: str, full_page: bool = True) -> Path:
        path = SHOTS / f"{self.name}-{step}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        self.shots.append(path)
        return path

    def sign_up(self, username: str | None = None, password: str = "correct horse") -> str:
        """Create an account through the sign-in page (and so sign in)."""
        username = username or f"user{uuid.uuid4().hex[:8]}"
        self.open("signin")
        self.page.get_by_label("User name").fill(username)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Create account").click()
        self.page.get_by_text(f"Signed in as {username}").wait_for()
        return username


@pytest.fixture
def console(chromium: Any, percept_app: Any, request: pytest.FixtureRequest) -> Iterator[Console]:
    phone = bool(getattr(request, "param", None) == "phone")
    context = chromium.new_context(viewport=PHONE if phone else DESKTOP, is_mobile=phone, has_touch=phone,
                                   accept_downloads=False)
    context.set_default_timeout(30_000)
    page = context.new_page()
    name = request.node.name.replace("test_", "").replace("[", "-").replace("]", "")
    tab = Console(page=page, url=percept_app.url, name=name)
    (SHOTS / f"{name}-failed.png").unlink(missing_ok=True)  # a stale one from an earlier run
    page.on("pageerror", lambda exc: tab.errors.append(f"page error: {exc}"))
    # JavaScript errors count; the browser's own "Failed to load resource" lines for the 4xx/5xx
    # answers a flow provokes on purpose do not (the page shows those in plain words).
    page.on("console", lambda msg: tab.errors.append(f"console: {msg.text}")
            if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)
    yield tab
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        tab.shot("failed")
    context.close()


@pytest.fixture
def flow_timer(request: pytest.FixtureRequest) -> Iterator[Any]:
    """``with flow_timer("reading"): ...`` records how long a user's flow takes (seconds)."""

    class Timer:
        def __init__(self) -> None:
            self.name = ""

        def __call__(self, name: str) -> Timer:
            self.name = name
            return self

        def __enter__(self) -> Timer:
            self.started = time.perf_counter()
            return self

        def __exit__(self, *exc: object) -> None:
            if exc[0] is None:
                took = round(time.perf_counter() - self.started, 1)
                _timings[self.name] = took
                logger.warning("browser flow %s took %.1f s", self.name, took)

    yield Timer()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _timings:
        terminalreporter.write_sep("-", "browser flows (seconds)")
        for name, took in sorted(_timings.items()):
            terminalreporter.write_line(f"{name:<28} {took:7.1f}")
        terminalreporter.write_line(f"screenshots: {SHOTS}")

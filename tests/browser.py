"""Debian's Chromium driven by Playwright, headless, with screenshots kept as test artifacts.

``make test`` installs Chromium when it is missing and it can (as root, with apt); otherwise the
tests marked ``browser`` skip, saying how to get it. Playwright's own browser downloads are not
used. Screenshots go to ``$KATUNA_TEST_ARTIFACTS`` or ``tests/artifacts/``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, expect, sync_playwright

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


MISSING = ("Chromium is not installed, so the browser tests are skipped: install it with "
           "`apt-get install chromium` (or `make chromium`) as root, or set KATUNA_CHROMIUM to a Chromium binary")


EXPECT_MS = 20_000
"""How long an ``expect`` waits for what it asserts. Playwright's default, 5 s, is less than a
page's login, load and render can take on a two-core machine running the whole suite in parallel;
an assertion that holds still returns as soon as it does."""

PAGE_MS = 90_000
"""How long a page's load, or a wait on it, may take (Playwright's default is 30 s). Each test's
page parses plotly.js (4.8 MB) anew, in a context of its own: 2-3 s of one core on a quiet
two-core machine, and past 30 s there with six test workers and their browsers sharing it."""


def chromium_path() -> str | None:
    """Chromium's executable (``$KATUNA_CHROMIUM``, else ``chromium`` on the PATH); None when missing."""
    path = os.environ.get("KATUNA_CHROMIUM") or shutil.which("chromium")
    return path if path and Path(path).is_file() else None


def require_chromium() -> str:
    """Chromium's executable, or skip the calling test with how to install it."""
    path = chromium_path()
    if path is None:
        pytest.skip(MISSING)
    return path


def artifacts() -> Path:
    folder = Path(os.environ.get("KATUNA_TEST_ARTIFACTS") or Path(__file__).parent / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class PatientBrowser:
    """A Playwright browser whose every context waits :data:`PAGE_MS` on its pages."""

    def __init__(self, browser: Browser) -> None:
        self._browser = browser

    def __getattr__(self, name: str):
        return getattr(self._browser, name)

    def new_context(self, **options) -> BrowserContext:
        context = self._browser.new_context(**options)
        context.set_default_timeout(PAGE_MS)
        return context

    def new_page(self, **options) -> Page:
        page = self._browser.new_page(**options)
        page.context.set_default_timeout(PAGE_MS)
        return page


@contextmanager
def chromium() -> Iterator[Browser]:
    expect.set_options(timeout=EXPECT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=require_chromium(), args=CHROMIUM_ARGS, headless=True)
        try:
            yield cast(Browser, PatientBrowser(browser))
        finally:
            browser.close()


def screenshot(page: Page, name: str) -> Path:
    path = artifacts() / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


class Console:
    """What a page says is wrong: its console's errors and its uncaught exceptions, each with
    the page's address. A test ends with none unless it expected them (:meth:`expect`): a
    script that fails on a page fails its test, even where the page still looks right."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        self._expected: list[re.Pattern[str]] = []
        page.on("console", lambda message: self._console(page, message))
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: uncaught {error}"))

    def _console(self, page: Page, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{page.url}: {message.text}")

    def expect(self, *patterns: str) -> None:
        """Errors matching any of ``patterns`` (regular expressions) are what the test causes."""
        self._expected += [re.compile(pattern) for pattern in patterns]

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self._expected)]


@contextmanager
def watched_page(browser: Browser, console: dict[Page, Console], width: int, height: int = 900) -> Iterator[Page]:
    """A page of a browser context of its own, ``width`` by ``height`` pixels, each page the context opens
    watched in ``console``: by the end, no console may show an error but those a test names
    (``console[page].expect``)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    context.on("page", lambda opened: console.setdefault(opened, Console(opened)))
    opened = context.new_page()
    yield opened
    context.close()
    errors = [error for watched in console.values() for error in watched.unexpected()]
    assert not errors, "the dashboard's console said:\n" + "\n".join(errors)

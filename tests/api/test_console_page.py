"""/console: the built console with strict security headers, or a page that says how to build it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from agent_console.web import ConsoleRoutes
from tests.conftest import free_port


@pytest.fixture
def build_dir(tmp_path: Path) -> Path:
    """A stand-in for a Vite build: an index page and one hashed asset."""
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text(
        '<!doctype html><script type="module" src="/console/assets/index-Ab12.js"></script>'
    )
    (tmp_path / "assets" / "index-Ab12.js").write_text("console.log('console')")
    return tmp_path


@asynccontextmanager
async def serve(build: Path) -> AsyncIterator[str]:
    app = web.Application()
    ConsoleRoutes(build).register(app)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def console_url(build_dir: Path) -> AsyncIterator[str]:
    async with serve(build_dir) as url:
        yield url


async def test_console_page_forbids_inline_script_and_framing(console_url: str) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{console_url}/console") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        policy = response.headers["Content-Security-Policy"]
        body = await response.text()
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert "/console/assets/index-Ab12.js" in body


async def test_assets_are_served_and_nothing_else(console_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{console_url}/console/assets/index-Ab12.js") as response:
            assert response.status == 200
            assert "immutable" in response.headers["Cache-Control"]
        for name in ("missing-Zz99.js", "..%2Findex.html", "index.html"):
            async with http.get(f"{console_url}/console/assets/{name}") as response:
                assert response.status == 404, name


async def test_missing_build_says_how_to_build_it(tmp_path: Path) -> None:
    async with serve(tmp_path / "never-built") as url:
        async with aiohttp.ClientSession() as http, http.get(f"{url}/console") as response:
            assert response.status == 503
            text = await response.text()
        assert "./dev serve" in text
        assert "npm ci" in text

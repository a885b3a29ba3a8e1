"""Serve the built console (agent_console/frontend → agent_console/static/console) at /console.

The build output is not in git: `./dev serve` and `./dev test` build it with npm when it is
missing or stale. If it is missing anyway (the hub started some other way), /console says so
in a page a person can act on, instead of a bare 404.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from aiohttp import web

BUILD_DIR = Path(__file__).with_name("static") / "console"
# Vite names every asset `<name>-<content hash>.<ext>`; nothing else is served from there.
ASSET_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.(js|css|map|svg|png|woff2)$")

# The page loads only its own hashed script and stylesheet; everything else is refused.
# connect-src 'self' covers the same-origin WebSocket (ws:/wss:) of Socket.IO.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",  # for browsers that predate frame-ancestors
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    # Always fetch the page itself, so a new build's asset names are picked up at once.
    "Cache-Control": "no-store",
}
ASSET_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "public, max-age=31536000, immutable",  # names change with content
}

MISSING_BUILD_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Console not built</title></head>
<body><h1>The agent console has not been built</h1>
<p>Run <code>./dev serve</code>, which builds the console, or build it by hand:
<code>cd agent_console/frontend &amp;&amp; npm ci &amp;&amp; npm run build</code>
(needs Node.js 20.19+ and npm). Expected: <code>{path}</code>.</p>
<p lang="zh-CN">坐席工作台尚未构建：请运行 <code>./dev serve</code>（会自动构建）。</p>
</body></html>
"""


class ConsoleRoutes:
    """`/console` (the single-page app) and `/console/assets/<hashed file>`."""

    def __init__(self, build_dir: Path = BUILD_DIR) -> None:
        self.build_dir = build_dir

    def register(self, app: web.Application) -> None:
        app.router.add_get("/console", self.page)
        app.router.add_get("/console/", self.page)
        app.router.add_get("/console/assets/{name}", self.asset)

    async def page(self, _: web.Request) -> web.StreamResponse:
        index = self.build_dir / "index.html"
        if not index.is_file():
            return web.Response(
                status=503,
                text=MISSING_BUILD_PAGE.format(path=html.escape(str(index))),
                content_type="text/html",
                headers=PAGE_HEADERS,
            )
        return web.FileResponse(
            index, headers={**PAGE_HEADERS, "Content-Type": "text/html; charset=utf-8"}
        )

    async def asset(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = self.build_dir / "assets" / name
        if not ASSET_NAME.match(name) or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers=ASSET_HEADERS)

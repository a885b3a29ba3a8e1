"""The KB's HTTP API on the running hub: search contract, CRUD, auth, errors, live index."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.conftest import ADMIN_TOKEN, RunningHub

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

NEW_ARTICLE: dict[str, Any] = {
    "id": "kb-safe-box",
    "title": "保管箱租用办理流程",
    "body": (
        "个人客户可在开通保管箱业务的网点租用保管箱，需本人携带身份证，"
        "按箱型每年收取租金300至1500元，另收押金。"
    ),
    "lang": "zh",
    "category": "banking",
    "questions": ["怎么租保管箱", "保管箱一年多少钱"],
    "title_alt": "Renting a safe-deposit box",
}


async def call(
    hub: RunningHub,
    method: str,
    path: str,
    *,
    json: Any = None,
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method, hub.base_url + path, json=json, headers=headers, data=data
        ) as response,
    ):
        return response.status, await response.json()


async def test_healthz(running_hub: RunningHub) -> None:
    status, body = await call(running_hub, "GET", "/healthz")
    assert status == 200 and body["status"] == "ok" and body["articles"] > 40


async def test_search_follows_the_contract(running_hub: RunningHub) -> None:
    status, body = await call(running_hub, "GET", "/api/kb/search?q=信用卡丢了怎么挂失&k=3")
    assert status == 200
    assert set(body) >= {"results", "answerable"}
    assert isinstance(body["answerable"], bool) and body["answerable"] is True
    assert 1 <= len(body["results"]) <= 3
    top = body["results"][0]
    assert set(top) >= {"id", "title", "score", "snippet"}
    assert "挂失" in top["title"]


async def test_search_of_an_unanswerable_question_is_not_answerable(
    running_hub: RunningHub,
) -> None:
    status, body = await call(running_hub, "GET", "/api/kb/search?q=今天天气怎么样")
    assert status == 200 and body["answerable"] is False


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("", "invalid_input"),
        ("?q=hi&k=0", "invalid_input"),
        ("?q=hi&k=abc", "invalid_input"),
        ("?q=" + "x" * 600, "invalid_input"),
    ],
)
async def test_bad_search_input_gets_a_4xx_with_a_sentence(
    running_hub: RunningHub, query: str, code: str
) -> None:
    status, body = await call(running_hub, "GET", "/api/kb/search" + query)
    assert status == 400
    assert body["code"] == code and body["message"]


async def test_article_crud_needs_an_editor_or_the_admin_token(running_hub: RunningHub) -> None:
    status, body = await call(running_hub, "POST", "/api/kb/articles", json=NEW_ARTICLE)
    assert status == 401 and body["code"] == "unauthenticated"
    # A token that is neither the admin token nor a live staff session is no credential.
    status, body = await call(
        running_hub,
        "POST",
        "/api/kb/articles",
        json=NEW_ARTICLE,
        headers={"Authorization": "Bearer nope"},
    )
    assert status == 401 and body["code"] == "unauthenticated"
    status, _ = await call(running_hub, "GET", "/api/kb/articles")
    assert status == 401


async def test_created_article_is_searchable_at_once_and_removed_on_delete(
    running_hub: RunningHub,
) -> None:
    status, before = await call(running_hub, "GET", "/api/kb/search?q=保管箱一年租金多少钱")
    assert status == 200
    assert all(r["id"] != "kb-safe-box" for r in before["results"][:1])

    status, created = await call(
        running_hub, "POST", "/api/kb/articles", json=NEW_ARTICLE, headers=AUTH
    )
    assert status == 201 and created["version"] == 1 and created["status"] == "published"
    _, after = await call(running_hub, "GET", "/api/kb/search?q=保管箱一年租金多少钱")
    assert after["results"][0]["id"] == "kb-safe-box"

    status, _ = await call(running_hub, "DELETE", "/api/kb/articles/kb-safe-box", headers=AUTH)
    assert status == 200
    _, gone = await call(running_hub, "GET", "/api/kb/search?q=保管箱一年租金多少钱")
    assert all(r["id"] != "kb-safe-box" for r in gone["results"])
    status, body = await call(running_hub, "GET", "/api/kb/articles/kb-safe-box", headers=AUTH)
    assert status == 404 and body["code"] == "not_found"


async def test_update_keeps_versions_and_checks_the_version_edited(running_hub: RunningHub) -> None:
    await call(running_hub, "POST", "/api/kb/articles", json=NEW_ARTICLE, headers=AUTH)
    changed = {**NEW_ARTICLE, "body": NEW_ARTICLE["body"] + "租期最短一年。", "version": 1}
    status, updated = await call(
        running_hub, "PUT", "/api/kb/articles/kb-safe-box", json=changed, headers=AUTH
    )
    assert status == 200 and updated["version"] == 2
    status, conflict = await call(
        running_hub, "PUT", "/api/kb/articles/kb-safe-box", json=changed, headers=AUTH
    )
    assert status == 409 and conflict["code"] == "conflict"
    status, versions = await call(
        running_hub, "GET", "/api/kb/articles/kb-safe-box/versions", headers=AUTH
    )
    assert [v["version"] for v in versions["versions"]] == [1, 2]
    assert versions["versions"][0]["body"] == NEW_ARTICLE["body"]


async def test_draft_articles_are_not_searched(running_hub: RunningHub) -> None:
    draft = {**NEW_ARTICLE, "status": "draft"}
    status, _ = await call(running_hub, "POST", "/api/kb/articles", json=draft, headers=AUTH)
    assert status == 201
    _, result = await call(running_hub, "GET", "/api/kb/search?q=保管箱一年租金多少钱")
    assert all(r["id"] != "kb-safe-box" for r in result["results"])
    published = {**NEW_ARTICLE, "status": "published"}
    await call(running_hub, "PUT", "/api/kb/articles/kb-safe-box", json=published, headers=AUTH)
    _, result = await call(running_hub, "GET", "/api/kb/search?q=保管箱一年租金多少钱")
    assert result["results"][0]["id"] == "kb-safe-box"


async def test_future_effective_date_hides_an_article(running_hub: RunningHub) -> None:
    future = {**NEW_ARTICLE, "effective_from": "2099-01-01T00:00:00+08:00"}
    await call(running_hub, "POST", "/api/kb/articles", json=future, headers=AUTH)
    _, result = await call(running_hub, "GET", "/api/kb/search?q=保管箱一年租金多少钱")
    assert all(r["id"] != "kb-safe-box" for r in result["results"])


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"title": "", "body": "x"}, "title"),
        ({"title": "t"}, "body"),
        ({**NEW_ARTICLE, "id": "bad id!"}, "id"),
        ({**NEW_ARTICLE, "effective_from": "2027-01-01T00:00:00"}, "timezone"),
        ({**NEW_ARTICLE, "status": "live"}, "status"),
    ],
)
async def test_invalid_articles_are_refused_with_a_reason(
    running_hub: RunningHub, payload: dict[str, Any], fragment: str
) -> None:
    status, body = await call(running_hub, "POST", "/api/kb/articles", json=payload, headers=AUTH)
    assert status == 400 and body["code"] == "invalid_input"
    assert fragment in body["message"]


async def test_malformed_json_is_a_400(running_hub: RunningHub) -> None:
    status, body = await call(
        running_hub,
        "POST",
        "/api/kb/articles",
        data=b"{not json",
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert status == 400 and body["code"] == "invalid_input"


async def test_duplicate_id_is_a_conflict(running_hub: RunningHub) -> None:
    await call(running_hub, "POST", "/api/kb/articles", json=NEW_ARTICLE, headers=AUTH)
    status, body = await call(
        running_hub, "POST", "/api/kb/articles", json=NEW_ARTICLE, headers=AUTH
    )
    assert status == 409 and "exists" in body["message"]


async def test_oversized_body_is_a_413(running_hub: RunningHub) -> None:
    status, body = await call(
        running_hub,
        "POST",
        "/api/kb/articles",
        data=b"x" * (2 * 1024 * 1024),
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert status == 413 and body["code"] == "payload_too_large"


async def test_unknown_route_is_json_404(running_hub: RunningHub) -> None:
    status, body = await call(running_hub, "GET", "/api/nothing-here")
    assert status == 404 and body["code"] == "not_found"

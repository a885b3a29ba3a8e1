"""KB editing behind the editor role, and the unanswered questions editors work from."""

from __future__ import annotations

from hub.storage.models import KbUnanswered
from tests.conftest import RunningHub
from tests.console.helpers import agent_id, call, login

ARTICLE = {
    "id": "kb-editor-test",
    "title": "保管箱租用",
    "body": "个人客户可在网点租用保管箱，需本人携带身份证。",
    "lang": "zh",
    "category": "banking",
}


async def test_an_editor_edits_articles_under_their_own_name(running_hub: RunningHub) -> None:
    token = await login(running_hub, "editor.xu")
    status, body = await call(running_hub, "POST", "/api/kb/articles", token=token, json=ARTICLE)
    assert status == 201, body
    editor = await agent_id(running_hub.hub.database, "editor.xu")
    assert body["updated_by"] == f"staff:{editor}:editor.xu"
    agent = await login(running_hub, "agent.li")
    status, body = await call(
        running_hub, "PUT", "/api/kb/articles/kb-editor-test", token=agent, json=ARTICLE
    )
    assert status == 403 and body["code"] == "forbidden"


async def test_unanswered_questions_are_listed_newest_first_and_masked(
    running_hub: RunningHub,
) -> None:
    async with running_hub.hub.database.write() as session:
        session.add(KbUnanswered(question="我的卡4111 1111 1111 1111被吞了怎么办", language="zh"))
        session.add(KbUnanswered(question="遗产继承怎么过户", language="zh"))
    token = await login(running_hub, "editor.xu")
    status, body = await call(running_hub, "GET", "/api/kb/unanswered?limit=10", token=token)
    assert status == 200 and body["total"] >= 2
    questions = [q["question"] for q in body["questions"]]
    assert questions[:2] == ["遗产继承怎么过户", "我的卡4111 11** **** 1111被吞了怎么办"]

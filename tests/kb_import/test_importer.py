"""Importing KB articles: JSONL, CSV and Markdown, all or nothing, errors with line numbers."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hub.errors import ImportFailed
from hub.storage.database import Database
from hub.storage.models import KbArticle, KbArticleVersion
from knowledge.embedding import Embedder
from knowledge.importer import read_articles
from knowledge.search import SearchEngine
from knowledge.service import KnowledgeBase
from tests.conftest import SHARED_KB

ARTICLE = {
    "kind": "article",
    "id": "a1",
    "title": "信用卡挂失",
    "body": "拨打热线挂失。",
    "lang": "zh",
    "category": "card",
}


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text(
        "\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows),
        encoding="utf-8",
    )
    return path


def test_reads_the_article_lines_of_the_dev_set_and_ignores_queries() -> None:
    items = read_articles(SHARED_KB)
    assert len(items) == 40
    assert {i.id for i in items} >= {"kb001", "kb040"}
    kb010 = next(i for i in items if i.id == "kb010")
    assert kb010.lang == "en" and kb010.title_alt


def test_questions_and_tags_are_kept(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "a.jsonl", [{**ARTICLE, "questions": ["卡丢了", " ", "怎么挂失"]}]
    )
    (item,) = read_articles(path)
    assert item.questions == ["卡丢了", "怎么挂失"]


@pytest.mark.parametrize(
    ("bad_line", "expected"),
    [
        ("{not json", "line 2: not valid JSON"),
        (
            json.dumps({"kind": "article", "id": "a2", "body": "no title"}),
            "line 2: Invalid input — title",
        ),
        ("[1, 2]", "line 2: expected a JSON object"),
        (json.dumps({**ARTICLE}), "line 2: id 'a1' appears again (first at line 1)"),
    ],
)
def test_a_bad_line_fails_the_import_naming_the_line(
    tmp_path: Path, bad_line: str, expected: str
) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [ARTICLE, bad_line, {**ARTICLE, "id": "a3"}])
    with pytest.raises(ImportFailed) as caught:
        read_articles(path)
    assert "Nothing was imported" in caught.value.message
    assert expected in caught.value.message


def test_csv_with_list_columns(tmp_path: Path) -> None:
    path = tmp_path / "kb.csv"
    path.write_text(
        "id,title,body,lang,category,questions,tags\n"
        'c1,Lost card,"Call us, then freeze it in the app.",en,card,'
        "lost card|stolen card,cards|urgent\n",
        encoding="utf-8",
    )
    (item,) = read_articles(path)
    assert item.questions == ["lost card", "stolen card"] and item.tags == ["cards", "urgent"]
    assert item.body == "Call us, then freeze it in the app."


def test_csv_without_required_columns(tmp_path: Path) -> None:
    path = tmp_path / "kb.csv"
    path.write_text("id,name\n1,x\n", encoding="utf-8")
    with pytest.raises(ImportFailed, match="body"):
        read_articles(path)


def test_csv_bad_row_is_named(tmp_path: Path) -> None:
    path = tmp_path / "kb.csv"
    path.write_text("id,title,body\nok,T,B\nbad,,B\n", encoding="utf-8")
    with pytest.raises(ImportFailed, match="line 3"):
        read_articles(path)


def test_markdown_folder_with_front_matter(tmp_path: Path) -> None:
    folder = tmp_path / "md"
    (folder / "cards").mkdir(parents=True)
    (folder / "cards" / "lost-card.md").write_text(
        "---\nlang: en\ncategory: card\nquestions:\n  - I lost my card\ntags: cards|urgent\n---\n"
        "# Report a lost card\n\nCall 400-888-0000 at once.\n",
        encoding="utf-8",
    )
    (folder / "fees.md").write_text("# 年费说明\n\n刷卡满6次免年费。\n", encoding="utf-8")
    items = {i.id: i for i in read_articles(folder)}
    assert items["lost-card"].title == "Report a lost card"
    assert items["lost-card"].body == "Call 400-888-0000 at once."
    assert items["lost-card"].questions == ["I lost my card"]
    assert items["lost-card"].tags == ["cards", "urgent"]
    assert items["fees"].title == "年费说明" and items["fees"].lang == "zh"


def test_markdown_with_broken_front_matter(tmp_path: Path) -> None:
    folder = tmp_path / "md"
    folder.mkdir()
    (folder / "x.md").write_text("---\ntitle: [unclosed\n---\nbody\n", encoding="utf-8")
    with pytest.raises(ImportFailed, match=r"x\.md"):
        read_articles(folder)


def test_unknown_file_type(tmp_path: Path) -> None:
    path = tmp_path / "kb.xlsx"
    path.write_bytes(b"PK")
    with pytest.raises(ImportFailed, match=r"\.jsonl, \.csv"):
        read_articles(path)


async def test_import_stores_all_and_reimport_updates_by_id(
    database: Database, embedders: list[Embedder], tmp_path: Path
) -> None:
    with ThreadPoolExecutor(max_workers=2) as executor:
        kb = KnowledgeBase(database, SearchEngine(embedders, tmp_path / "index"), executor)
        first = write_jsonl(
            tmp_path / "a.jsonl",
            [ARTICLE, {**ARTICLE, "id": "a2", "title": "年费", "body": "免年费政策。"}],
        )
        report = await kb.import_articles(read_articles(first), actor="test")
        assert report.created_or_updated == 2
        again = write_jsonl(
            tmp_path / "b.jsonl",
            [
                {**ARTICLE, "body": "拨打热线或在App内挂失。"},
                {**ARTICLE, "id": "a2", "title": "年费", "body": "免年费政策。"},
            ],
        )
        report = await kb.import_articles(read_articles(again), actor="test")
        assert (report.created_or_updated, report.unchanged) == (1, 1)
        result = await kb.search("信用卡怎么挂失")
        assert result.hits[0].article_id == "a1"
    async with database.read() as session:
        article = await session.get(KbArticle, "a1")
        versions = await session.scalar(select(func.count()).select_from(KbArticleVersion))
    assert article is not None and article.version == 2 and "App" in article.body
    assert versions == 3

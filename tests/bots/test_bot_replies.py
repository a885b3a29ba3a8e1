"""Answer texts: articles quoted as written, long ones cut to the part that answers."""

from __future__ import annotations

from bots.project import RasaProject
from bots.replies import ELLIPSIS, FULL_BODY_CHARS, article_answer, relevant_excerpt
from knowledge.embedding import Embedder
from knowledge.types import ArticleDoc

PARAGRAPHS = [
    "Opening hours. Our branches open from 9:00 to 17:00 on working days. Some city-centre "
    "branches also open on Saturday mornings; check the branch finder in the app for details. "
    "Public holidays follow the national calendar and are announced two weeks ahead.",
    "Safe deposit boxes. Boxes come in three sizes and are rented for a year at a time. You "
    "need your ID card and a debit card with us to rent one. The annual fee is charged to the "
    "debit card, and a refundable deposit is held for the key.",
    "Coins and notes. Branches exchange damaged banknotes free of charge as long as more than "
    "three quarters of the note is intact. Large amounts of coins can be deposited at the "
    "counter after booking an appointment at least one working day ahead.",
    "Accessibility. Every branch has step-free access and a lowered counter. Guide dogs are "
    "welcome, and staff can read documents aloud on request.",
]


def doc(body: str, lang: str = "en", title_alt: str | None = "分行服务指南") -> ArticleDoc:
    return ArticleDoc(
        id="kb900",
        title="Branch services guide",
        body=body,
        lang=lang,
        category="banking",
        title_alt=title_alt,
    )


def test_short_bodies_are_quoted_whole(embedders: list[Embedder]) -> None:
    body = PARAGRAPHS[0]
    assert relevant_excerpt(body, "when are you open", embedders[0]) == body


def test_long_bodies_are_cut_to_the_part_that_answers(embedders: list[Embedder]) -> None:
    body = "\n\n".join(PARAGRAPHS)
    assert len(body) > FULL_BODY_CHARS
    excerpt = relevant_excerpt(body, "what do I need to rent a safe deposit box", embedders[0])
    assert "You need your ID card and a debit card with us to rent one." in excerpt
    assert "Guide dogs" not in excerpt
    assert len(excerpt) < len(body)
    assert excerpt.startswith(ELLIPSIS) and excerpt.endswith(ELLIPSIS)


def test_an_article_in_the_customers_language_is_named_and_quoted(project: RasaProject) -> None:
    text = article_answer(project, doc("Body text."), "Body text.", "en")
    assert text == "From our article “Branch services guide”:\nBody text."


def test_an_article_in_another_language_is_quoted_with_a_note_not_translated(
    project: RasaProject,
) -> None:
    text = article_answer(project, doc("Body text."), "Body text.", "zh")
    assert text == "我们的文章《分行服务指南》目前只有英文版，内容如下：\nBody text."
    untitled = article_answer(project, doc("正文", lang="zh", title_alt=None), "正文", "en")
    assert untitled.startswith("Our article “Branch services guide” is available in Chinese only")
    assert untitled.endswith("正文")

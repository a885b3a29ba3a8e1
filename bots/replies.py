"""What the embedded bot says: domain.yml responses filled in the customer's language."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bots.project import RasaProject
from hub.language import SUPPORTED_LANGUAGES
from knowledge.embedding import Embedder
from knowledge.types import ArticleDoc

# Response names the embedded bot uses besides those named in handoff.yml.
GREET = "utter_greet"
GOODBYE = "utter_goodbye"
THANKS = "utter_thanks"
ANYTHING_ELSE = "utter_anything_else"
ASK_HOW_CAN_HELP = "utter_ask_how_can_help"
NOT_UNDERSTOOD = "utter_default"
OUT_OF_SCOPE = "utter_out_of_scope"
KB_ANSWER = "utter_kb_answer"
KB_ANSWER_OTHER_LANGUAGE = "utter_kb_answer_other_language"
ASK_VERIFY = "utter_ask_verify"
CHITCHAT_RESPONSES = {
    "greet": GREET,
    "goodbye": GOODBYE,
    "thanks": THANKS,
    "affirm": ANYTHING_ELSE,
}
RESPONSES_USED = (
    GREET,
    GOODBYE,
    THANKS,
    ANYTHING_ELSE,
    ASK_HOW_CAN_HELP,
    NOT_UNDERSTOOD,
    OUT_OF_SCOPE,
    KB_ANSWER,
    KB_ANSWER_OTHER_LANGUAGE,
    ASK_VERIFY,
)

# Bodies up to this length are quoted whole; longer ones are cut to their most relevant part.
FULL_BODY_CHARS = 700
EXCERPT_CHARS = 450
_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[。！？!?；;])|(?<=[.])\s+")
ELLIPSIS = "…"
_CJK_END = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]$")


def responses_needed(project: RasaProject) -> list[str]:
    """Every response the embedded bot may say, for start-up and test checks."""
    return [
        *RESPONSES_USED,
        *project.handoff.reason_responses.values(),
        project.handoff.queue_response,
    ]


def article_answer(project: RasaProject, doc: ArticleDoc, body: str, language: str) -> str:
    """Quote an article, naming it; say so when it is written in another language.

    The bot never translates: a customer writing English gets a Chinese-only article as it
    is, with its English title when the editor gave one and a note on its language.
    """
    if doc.lang == language or doc.lang not in SUPPORTED_LANGUAGES:
        return project.render(KB_ANSWER, language, title=doc.title, body=body)
    return project.render(
        KB_ANSWER_OTHER_LANGUAGE, language, title=doc.title_alt or doc.title, body=body
    )


def relevant_excerpt(body: str, query: str, embedder: Embedder) -> str:
    """Return the body, or for a long one its pieces closest to the query (blocking)."""
    body = body.strip()
    if len(body) <= FULL_BODY_CHARS:
        return body
    pieces = _pieces(body)
    if len(pieces) < 2:
        return body[:EXCERPT_CHARS].rstrip() + ELLIPSIS
    texts = [p.text for p in pieces]
    scores = embedder.embed_passages(texts) @ embedder.embed_queries([query])[0]
    best = int(np.argmax(scores))
    # The best piece, then what follows it in its paragraph: an answer's details tend to come
    # after the sentence that matches the question, while other paragraphs are other topics.
    chosen = [best]
    used = len(texts[best])
    for index in range(best + 1, len(pieces)):
        if pieces[index].paragraph != pieces[best].paragraph:
            break
        if used + len(texts[index]) > EXCERPT_CHARS:
            break
        chosen.append(index)
        used += len(texts[index])
    return _join_in_order(pieces, chosen)


@dataclass(frozen=True)
class _Piece:
    text: str
    paragraph: int


def _pieces(body: str) -> list[_Piece]:
    """Split into paragraphs, and paragraphs longer than an excerpt into sentences."""
    out: list[_Piece] = []
    paragraphs = [p.strip() for p in _PARAGRAPH.split(body) if p.strip()]
    for number, paragraph in enumerate(paragraphs):
        if len(paragraph) <= EXCERPT_CHARS:
            out.append(_Piece(paragraph, number))
            continue
        for sentence in _SENTENCE_END.split(paragraph):
            if sentence.strip():
                out.append(_Piece(_clip(sentence.strip()), number))
    return out


def _clip(text: str) -> str:
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS].rstrip() + ELLIPSIS


def _join_in_order(pieces: Sequence[_Piece], chosen: Sequence[int]) -> str:
    """Join chosen pieces in reading order, marking skipped text with an ellipsis."""
    text = ELLIPSIS if chosen[0] != 0 else ""
    previous: int | None = None
    for index in chosen:
        piece = pieces[index]
        if previous is not None:
            gap = index != previous + 1
            same_paragraph = pieces[previous].paragraph == piece.paragraph
            text += (ELLIPSIS if gap else "") + ("" if gap else _separator(text, same_paragraph))
        text += piece.text
        previous = index
    if chosen[-1] != len(pieces) - 1:
        text += ELLIPSIS
    return text


def _separator(text: str, same_paragraph: bool) -> str:
    """Sentences of one paragraph run on (with a space in Latin script); paragraphs break."""
    if not same_paragraph:
        return "\n"
    return "" if _CJK_END.search(text) else " "

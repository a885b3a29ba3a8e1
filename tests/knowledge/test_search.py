"""The hybrid search engine end to end, with the real embedders (E5 + USE)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from knowledge.embedding import Embedder
from knowledge.evaluation import load_eval_file
from knowledge.search import SearchEngine
from knowledge.types import ArticleDoc


def build_engine(
    embedders: Sequence[Embedder], docs: Sequence[ArticleDoc], index_dir: Path | None = None
) -> SearchEngine:
    """Build and sync a fresh engine."""
    engine = SearchEngine(embedders, index_dir)
    engine.sync(docs)
    return engine


CAR_LOAN = ArticleDoc(
    id="car",
    title="汽车贷款申请条件与利率",
    body="个人汽车贷款最高可贷车价的80%，期限1-5年，年利率3.5%-6%，可在手机银行在线申请。",
    lang="zh",
    category="loan",
    title_alt="Car loan eligibility and interest rates",
)


def test_finds_the_article_for_colloquial_typo_and_crosslingual_queries(
    holdout_engine: SearchEngine,
) -> None:
    for query, expected in [
        ("你们那有保险柜可以租吗", "ho03"),
        ("xyk能在atm取钱吗，有利息吗", "ho11"),
        ("公积金带款要准备哪些材料", "ho07"),
        ("how do I open an e-CNY wallet", "ho05"),
        ("换手机号了银行预留手机号怎么改", "ho14"),
    ]:
        result = holdout_engine.search(query, k=3)
        assert result.best is not None and result.best.article_id == expected, query


def test_gate_answers_a_clear_question_and_refuses_a_near_miss(
    holdout_engine: SearchEngine,
) -> None:
    clear = holdout_engine.search("车贷想提前还清要交违约金吗")
    assert clear.answerable and clear.confidence >= 0.5
    assert clear.best is not None and clear.best.article_id == "ho02"
    # Next to the account-closure article (注销), but about a credit card, which it never names:
    near_miss = holdout_engine.search("我想了解一下信用卡怎么注销")
    assert not near_miss.answerable and near_miss.confidence < 0.5
    assert near_miss.signals["uncovered_entities"] >= 1
    off_topic = holdout_engine.search("明天会下雨吗")
    assert not off_topic.answerable


def test_gate_refuses_a_question_on_another_aspect_of_the_same_product(
    holdout_engine: SearchEngine,
) -> None:
    # The safe-deposit-box article says what renting costs, not who pays for lost contents.
    near_miss = holdout_engine.search("保险箱里的东西丢了银行赔吗")
    assert near_miss.best is not None and near_miss.best.article_id == "ho03"
    assert not near_miss.answerable and near_miss.confidence < 0.5
    assert near_miss.signals["unanswered.compensation"] == 1.0
    assert near_miss.signals["unanswered.lost"] == 1.0
    for question in ("保险箱一年租金多少", "租个保管箱一年多少钱"):
        answered = holdout_engine.search(question)
        assert answered.answerable, question
        assert answered.best is not None and answered.best.article_id == "ho03"
        assert answered.signals["unanswered_aspects"] == 0.0
    # The gold article names 金价 but quotes no price.
    assert not holdout_engine.search("金价今天多少一克").answerable
    assert holdout_engine.search("积存金最少买多少克").answerable


def test_body_shorthand_for_the_title_product_does_not_cover_another_product(
    holdout_engine: SearchEngine,
) -> None:
    # The personal-pension article writes 养老金 for short; the state pension is another product.
    state = holdout_engine.search("退休以后养老金能领多少")
    assert state.best is not None and state.best.article_id == "ho06"
    assert not state.answerable and state.signals["uncovered_entities"] == 1.0
    assert holdout_engine.search("个人养老金一年最多存多少").answerable


def test_products_missing_from_an_article_are_never_answered_from_it(
    holdout_engine: SearchEngine,
) -> None:
    for question in ("摩托车贷款能办吗", "国债逆回购怎么操作", "港股分红怎么扣税"):
        result = holdout_engine.search(question)
        assert not result.answerable and result.signals["uncovered_entities"] >= 1, question


def test_search_results_carry_what_callers_show(holdout_engine: SearchEngine) -> None:
    result = holdout_engine.search("ETF怎么买，交易时间是几点", k=4)
    assert len(result.hits) == 4
    assert len({h.article_id for h in result.hits}) == 4
    assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)
    best = result.hits[0]
    assert best.title == "ETF基金交易规则与费用" and best.category == "securities"
    assert best.snippet and len(best.snippet) <= 160
    assert {"e5-small-q4.cos", "use-m3.cos", "fused.margin", "uncovered_entities"} <= set(
        result.signals
    )


def test_live_upsert_and_remove_change_results(
    embedders: list[Embedder], small_docs: list[ArticleDoc]
) -> None:
    engine = build_engine(embedders, small_docs)
    before = engine.search("买车贷款利率多少")
    assert before.best is None or before.best.article_id != "car"
    assert not before.answerable

    engine.upsert(CAR_LOAN)
    added = engine.search("买车贷款利率多少")
    assert added.best is not None and added.best.article_id == "car"
    assert len(engine) == len(small_docs) + 1

    engine.upsert(replace(CAR_LOAN, title="摩托车贷款", title_alt="Motorbike loans"))
    assert engine.search("摩托车贷款").hits[0].title == "摩托车贷款"

    engine.remove("car")
    after = engine.search("买车贷款利率多少")
    assert all(h.article_id != "car" for h in after.hits)
    assert len(engine) == len(small_docs)


def test_only_effective_articles_are_found(
    embedders: list[Embedder], small_docs: list[ArticleDoc]
) -> None:
    now = datetime(2025, 6, 1, tzinfo=UTC)
    future = replace(CAR_LOAN, effective_from=now + timedelta(days=30))
    engine = build_engine(embedders, [*small_docs, future])
    query = "汽车贷款申请条件"
    assert all(h.article_id != "car" for h in engine.search(query, now=now).hits)
    later = engine.search(query, now=now + timedelta(days=31))
    assert later.best is not None and later.best.article_id == "car"
    # A new effective date alone is applied by sync without embedding anything again.
    report = engine.sync([*small_docs, replace(future, effective_from=now - timedelta(days=1))])
    assert (report.embedded, report.kept) == (0, len(small_docs) + 1)
    assert engine.search(query, now=now).hits[0].article_id == "car"
    # Naive datetimes (as a database may hand them over) compare as UTC.
    expired = replace(CAR_LOAN, effective_from=None, effective_to=datetime(2025, 1, 1))
    engine.upsert(expired)
    assert all(h.article_id != "car" for h in engine.search(query, now=now).hits)


def test_persisted_index_is_reused_and_only_changes_are_embedded(
    embedders: list[Embedder], small_docs: list[ArticleDoc], tmp_path: Path
) -> None:
    first = SearchEngine(embedders, tmp_path)
    progress: list[tuple[int, int]] = []
    report = first.sync(small_docs, progress=lambda done, total: progress.append((done, total)))
    assert (report.embedded, report.kept, report.removed) == (len(small_docs), 0, 0)
    assert progress[-1] == (len(small_docs), len(small_docs))
    expected = first.search("信用卡收到了怎么开卡")

    changed = [replace(small_docs[0], body=small_docs[0].body + "（2025年更新）"), *small_docs[2:]]
    second = SearchEngine(embedders, tmp_path)
    report = second.sync([*changed, CAR_LOAN])
    assert not report.rebuilt
    assert (report.embedded, report.removed, report.kept) == (2, 1, len(small_docs) - 2)
    again = second.search("信用卡收到了怎么开卡")
    assert again.best is not None and expected.best is not None
    assert again.best.article_id == expected.best.article_id

    # A restarted engine answers from the persisted index even before its first sync, and a
    # live upsert made before that sync builds on the persisted index instead of replacing it.
    restarted = SearchEngine(embedders, tmp_path)
    assert restarted.search("保管箱怎么租").best is not None
    assert len(restarted) == len(changed) + 1
    restarted.upsert(replace(CAR_LOAN, id="car2"))
    assert len(restarted) == len(changed) + 2

    third = SearchEngine(embedders, tmp_path)
    report = third.sync([*changed, CAR_LOAN])
    assert (report.embedded, report.kept) == (0, len(changed) + 1)
    assert len(third) == len(changed) + 1
    loaded = third.search("信用卡收到了怎么开卡")
    assert [(h.article_id, h.score) for h in loaded.hits] == [
        (h.article_id, h.score) for h in again.hits
    ]
    assert loaded.signals == again.signals


def test_corrupt_or_foreign_index_files_are_rebuilt(
    embedders: list[Embedder], small_docs: list[ArticleDoc], tmp_path: Path
) -> None:
    build_engine(embedders, small_docs, tmp_path)
    faiss_file = next(tmp_path.glob("vectors-e5*.faiss"))
    faiss_file.write_bytes(faiss_file.read_bytes()[:100])
    engine = SearchEngine(embedders, tmp_path)
    report = engine.sync(small_docs)
    assert report.rebuilt and report.embedded == len(small_docs)
    assert engine.search("保管箱怎么租").best is not None

    # Same directory, other embedders (only E5): the stored index does not fit and is rebuilt.
    e5_only = SearchEngine(embedders[:1], tmp_path)
    report = e5_only.sync(small_docs)
    assert report.rebuilt and report.embedded == len(small_docs)


def test_concurrent_searches_during_updates_see_whole_articles(
    embedders: list[Embedder], small_docs: list[ArticleDoc]
) -> None:
    engine = build_engine(embedders, small_docs)
    errors: list[BaseException] = []
    stop = threading.Event()
    known = {d.id for d in small_docs} | {"car"}

    def search_loop() -> None:
        try:
            while not stop.is_set():
                result = engine.search("汽车贷款利率")
                assert {h.article_id for h in result.hits} <= known
        except BaseException as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=search_loop) for _ in range(2)]
    for thread in threads:
        thread.start()
    for _ in range(3):
        engine.upsert(CAR_LOAN)
        engine.remove("car")
    stop.set()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(engine) == len(small_docs)


def test_parallel_articles_in_two_languages_do_not_block_an_answer(
    embedders: list[Embedder], small_docs: list[ArticleDoc]
) -> None:
    zh = replace(CAR_LOAN, id="car-zh")
    en = ArticleDoc(
        id="car-en",
        title=CAR_LOAN.title_alt or "",
        body="Car loans cover up to 80% of the price for 1-5 years at 3.5%-6% a year.",
        lang="en",
        category="loan",
        title_alt=CAR_LOAN.title,
    )
    engine = build_engine(embedders, [*small_docs, zh, en])
    result = engine.search("汽车贷款申请条件与利率")
    assert {h.article_id for h in result.hits[:2]} == {"car-zh", "car-en"}
    assert result.answerable


DEMO_KB = Path(__file__).resolve().parents[2] / "hub" / "demo_data"


def _demo_docs(*ids: str) -> list[ArticleDoc]:
    wanted = set(ids)
    docs = [
        doc
        for name in ("kb-core.jsonl", "kb-en.jsonl")
        for doc in load_eval_file(DEMO_KB / name)[0]
        if doc.id in wanted
    ]
    assert {d.id for d in docs} == wanted
    return docs


def test_translations_are_recognised_by_similarity_without_an_exact_title_link(
    embedders: list[Embedder], small_docs: list[ArticleDoc]
) -> None:
    # kb008's title_alt is not en-011's title (nor the other way round): only their titles'
    # cross-lingual similarity says they are one answer. Lost debit and lost credit cards are
    # as close by title, but each has a closer counterpart: those must stay apart.
    demo = _demo_docs("kb008", "en-011", "kb005", "en-003", "kb015", "en-002")
    engine = build_engine(embedders, [*small_docs, *demo])
    assert engine.are_translations("kb008", "en-011")
    assert engine.are_translations("kb005", "en-003")
    assert not engine.are_translations("kb005", "en-002")
    assert not engine.are_translations("kb015", "en-003")
    for query in ("大额存单多少钱起存", "what is the minimum for a large-denomination CD"):
        result = engine.search(query)
        assert result.answerable, result.signals
        assert {h.article_id for h in result.hits[:2]} == {"kb008", "en-011"}


def test_an_editor_tag_links_translations_and_removal_unlinks_them(
    embedders: list[Embedder], small_docs: list[ArticleDoc]
) -> None:
    zh = replace(CAR_LOAN, id="car-zh", title_alt=None)
    en = ArticleDoc(
        id="car-en",
        title="Auto financing",
        body="Car loans cover up to 80% of the price for 1-5 years at 3.5%-6% a year.",
        lang="en",
        category="loan",
        tags=("translation:car-zh",),
    )
    engine = build_engine(embedders, [*small_docs, zh, en])
    assert engine.are_translations("car-zh", "car-en")
    assert engine.are_translations("car-en", "car-zh")
    engine.remove("car-en")
    assert not engine.are_translations("car-zh", "car-en")


def test_articles_in_one_language_are_never_translations_by_similarity(
    embedders: list[Embedder], small_docs: list[ArticleDoc]
) -> None:
    near_copy = replace(CAR_LOAN, id="car-2", title="汽车贷款的申请条件和利率", title_alt=None)
    engine = build_engine(embedders, [*small_docs, replace(CAR_LOAN, title_alt=None), near_copy])
    assert not engine.are_translations("car", "car-2")

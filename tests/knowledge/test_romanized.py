"""Pinyin in queries, read against the knowledge base's own words."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from knowledge.embedding import Embedder
from knowledge.romanized import RomanizedVocabulary
from knowledge.search import SearchEngine
from knowledge.text import Analyzer
from knowledge.types import ArticleDoc

CROSS_BORDER = ArticleDoc(
    id="wmc",
    title="跨境理财通南向通开通条件",
    body="粤港澳大湾区内地居民开通跨境理财通南向通，需近3个月家庭金融净资产月末余额不低于100万元，"
    "并具有2年以上投资经历。可在手机银行预约开通，审核通过后即可购买港澳理财产品。",
    lang="zh",
    category="wealth",
    title_alt="Cross-boundary Wealth Management Connect: southbound eligibility",
)


def vocabulary(*articles: Sequence[str]) -> RomanizedVocabulary:
    words = RomanizedVocabulary({"how", "do", "i", "a", "claim", "on", "my", "home"})
    for article in articles:
        words.add(article)
    return words


def test_full_pinyin_initials_and_mixed_spellings_become_kb_words() -> None:
    words = vocabulary(["跨境", "理财通", "开通", "条件"], ["账单日", "修改", "存款", "证明"])
    assert words.convert("kuajing licaitong kaitong tiaojian") == "跨境 理财通 开通 条件"
    # Several words typed as one token, and initials of words the KB uses.
    assert words.convert("zhangdanrixiugai") == "账单日修改"
    assert words.convert("ckzm 能开英文的吗") == "存款证明 能开英文的吗"
    # A syllable shortened to its initial inside a spelt word.
    assert words.convert("kjing 理财") == "跨境 理财"


def test_english_words_and_unreadable_tokens_are_left_alone() -> None:
    words = vocabulary(["码可", "理赔"], ["limit", "转账"])
    # "make" spells 码可, but in an English sentence it is an English word.
    assert words.convert("how do i make a claim on my home") == "how do i make a claim on my home"
    # English words the KB itself uses are never read as pinyin, even beside Chinese.
    assert words.convert("转账 limit 多少") == "转账 limit 多少"
    # Nothing in the KB spells "zhuanqian": the token stays as typed.
    assert words.convert("zhuanqian 多久") == "zhuanqian 多久"
    # One syllable alone is too ambiguous to read.
    words.add(["赔"])
    assert words.convert("pei 吗") == "pei 吗"


def test_function_words_are_readable_and_count_towards_a_pinyin_query() -> None:
    words = RomanizedVocabulary({"how", "is"}, function_words={"怎么", "什么", "the"})
    words.add(["股息", "红利"])
    # No article lists 怎么, yet "zenme" reads; shui and shou (one syllable each) stay, but
    # being pinyin syllables they make the all-Latin query read as pinyin.
    assert words.convert("guxi hongli shui zenme shou") == "股息 红利 shui 怎么 shou"
    # English around two spellable words is still English.
    assert words.convert("how is guxi hongli the dividend tax") == (
        "how is guxi hongli the dividend tax"
    )
    # Function words survive the removal of every article.
    words.remove(["股息", "红利"])
    assert words.convert("zenme 办") == "怎么 办"


def test_homophones_go_to_the_word_more_articles_use_and_removal_forgets_words() -> None:
    words = vocabulary(["贷款"], ["贷款"], ["代款"])
    assert words.convert("daikuan 利率") == "贷款 利率"
    words.remove(["贷款"])
    words.remove(["贷款"])
    assert words.convert("daikuan 利率") == "代款 利率"
    words.remove(["代款"])
    assert words.convert("daikuan 利率") == "daikuan 利率"
    assert len(words) == 0


def test_the_engine_reads_pinyin_with_live_edits_and_after_a_restart(
    embedders: list[Embedder], small_docs: list[ArticleDoc], tmp_path: Path
) -> None:
    engine = SearchEngine(embedders, tmp_path)
    engine.sync(small_docs)
    query = "kuajing licaitong nanxiangtong tiaojian"
    before = engine.search(query)
    assert all(h.article_id != "wmc" for h in before.hits)
    assert not before.answerable

    engine.upsert(CROSS_BORDER)
    assert engine.analyze_query(query).text == "跨境 理财通 南向通 条件"
    found = engine.search(query)
    assert found.best is not None and found.best.article_id == "wmc"
    assert found.answerable

    # A restarted engine knows the KB's words from the persisted index alone.
    engine.save()
    restarted = SearchEngine(embedders, tmp_path)
    again = restarted.search(query)
    assert again.best is not None and again.best.article_id == "wmc"

    # An edit that drops the words drops their spellings.
    restarted.upsert(
        replace(CROSS_BORDER, title="港澳理财产品购买", body="可在手机银行购买港澳理财产品。")
    )
    assert restarted.analyze_query(query).text == query


def test_misspelt_words_are_repaired_to_words_the_kb_uses() -> None:
    analyzer = Analyzer()
    words = RomanizedVocabulary(
        analyzer.latin_words(),
        analyzer.function_words(),
        pair_frequency=lambda pair: {"诈骗": 1}.get(pair, 0),
        is_word=analyzer.is_word,
    )
    words.add(["结息日", "活期", "存款", "证明"])
    # A whole KB word read alike (结习日 → 结息日, 正明 → 证明) …
    assert analyzer.prepare_query("活期存款结习日是哪天", words) == "活期存款结息日是哪天"
    assert analyzer.prepare_query("贷款结清正明收费吗", words) == "贷款结清证明收费吗"
    # … or a pair of characters the KB's text holds (诈骗 inside 电信诈骗, say) and the
    # dictionary knows as a word.
    assert analyzer.prepare_query("被电信炸骗了", words) == "被电信诈骗了"
    # Correct text is left alone, though 的钱 reads like 的前 and 钱还 like other pairs.
    assert analyzer.prepare_query("我存的钱还能拿回来吗", words) == "我存的钱还能拿回来吗"
    # Without the KB's words, only the lexicon's terms are repaired.
    assert analyzer.prepare_query("活期存款结习日是哪天") == "活期存款结习日是哪天"

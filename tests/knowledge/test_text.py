"""Normalisation, language detection, finance vocabulary and Chinese segmentation."""

from __future__ import annotations

import pytest

from knowledge.text import Analyzer, chunk_body, detect_lang, finance_lexicon, normalize


def test_normalize_folds_width_case_and_common_typos() -> None:
    assert normalize("ＡＴＭ 转帐  额度") == "atm 转账 额度"
    assert normalize("手机银行登陆不了") == "手机银行登录不了"
    # The identity rule keeps a correct word away from the shorter 帐 -> 账 rule.
    assert normalize("帐篷") == "帐篷"


def test_detect_lang_counts_a_latin_acronym_in_chinese_as_chinese() -> None:
    assert detect_lang("LPR下调了我房贷月供会自动变少吗") == "zh"
    assert detect_lang("how long does an interbank transfer take") == "en"
    assert detect_lang("12345") == "en"


def test_jieba_keeps_finance_terms_from_the_user_dictionary_whole() -> None:
    words = Analyzer().words("保险箱怎么租数字人民币钱包可转债")
    assert "保险箱" in words
    assert "数字人民币" in words
    assert "可转债" in words


def test_pinyin_abbreviations_expand_from_table_and_from_lexicon_initials() -> None:
    analyzer = Analyzer()
    assert analyzer.prepare_query("xyk丢了") == "信用卡丢了"
    # jjdt is in no table: it is the initials of the lexicon term 基金定投.
    assert "基金定投" in analyzer.prepare_query("jjdt怎么停")
    # English words with vowels are never read as initials.
    assert analyzer.prepare_query("bank fees") == "bank fees"


def test_homophone_repair_fixes_broken_words_but_not_correct_ones() -> None:
    analyzer = Analyzer()
    assert analyzer.prepare_query("医疗险理培要哪些资料") == "医疗险理赔要哪些资料"
    assert analyzer.prepare_query("二手车也能办车代吗") == "二手车也能办车贷吗"
    # 钱保 sounds like 钱包 but 保险 is a real word here: no rewrite.
    assert analyzer.prepare_query("看病花的钱保险报销") == "看病花的钱保险报销"


def test_synonyms_map_chinese_and_english_to_one_concept() -> None:
    analyzer = Analyzer()
    zh = analyzer.analyze_query("储蓄卡丢了")
    en = analyzer.analyze_query("I lost my debit card")
    assert zh.entities == en.entities
    assert "@借记卡" in zh.terms


@pytest.mark.parametrize(
    ("question", "other_product", "its_product"),
    [
        (
            "你们的车贷利率是多少",
            "房贷利率调整说明 个人住房贷款利率按LPR调整",
            "汽车贷款申请条件与利率",
        ),
        (
            "平板电脑能不能买碎屏险",
            "手机碎屏险 为手机屏幕意外碎裂提供一次免费换屏",
            "平板碎屏险 iPad等平板电脑屏幕意外碎裂可换屏",
        ),
    ],
)
def test_entity_coverage_tells_one_product_from_its_neighbour(
    question: str, other_product: str, its_product: str
) -> None:
    # A car loan is not a mortgage; a tablet is not the phone a screen policy covers.
    analyzer = Analyzer()
    lexicon = finance_lexicon()
    (entity,) = analyzer.analyze_query(question).entities
    assert not lexicon.covers(analyzer.analyze_document(other_product).concepts, entity)
    assert lexicon.covers(analyzer.analyze_document(its_product).concepts, entity)


def test_a_narrower_entity_in_the_article_covers_the_broader_one_in_the_query() -> None:
    analyzer = Analyzer()
    lexicon = finance_lexicon()
    (bonds,) = analyzer.analyze_query("怎么买债券").entities
    assert lexicon.covers(analyzer.analyze_document("储蓄国债购买").concepts, bonds)
    (treasury,) = analyzer.analyze_query("国债怎么买").entities
    assert not lexicon.covers(analyzer.analyze_document("债券基金").concepts, treasury)


def test_chunk_body_keeps_sentences_whole() -> None:
    body = "第一句话很长。" * 10 + "最后一句。"
    chunks = chunk_body(body, size=30)
    assert "".join(chunks) == body
    assert all(c.endswith("。") for c in chunks)
    assert max(len(c) for c in chunks) <= 30


def test_body_shorthand_for_a_heading_entity_does_not_count_as_covered() -> None:
    analyzer = Analyzer()
    lexicon = finance_lexicon()
    (pension,) = analyzer.analyze_query("养老金什么时候发").entities
    body = analyzer.analyze_document("个人养老金账户 可在手机银行“养老金”专区开立")
    heading = analyzer.analyze_document("个人养老金账户")
    assert lexicon.covers(body.concepts, pension)
    assert not lexicon.covers(lexicon.subject_concepts(body.concepts, heading.concepts), pension)
    # An entity declared narrower than the heading's is no shorthand: a margin-trading article
    # (融资融券) that explains securities lending (融券) in its body covers questions on it.
    (lending,) = analyzer.analyze_query("融券怎么操作").entities
    margin = analyzer.analyze_document("融资融券业务 融券是向证券公司借入证券卖出")
    margin_heading = analyzer.analyze_document("融资融券业务")
    assert lexicon.covers(
        lexicon.subject_concepts(margin.concepts, margin_heading.concepts), lending
    )

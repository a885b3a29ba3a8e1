"""Question aspects: finding what a question asks about, and whether an article addresses it."""

from __future__ import annotations

import pytest

from knowledge.aspects import AspectLexicon, aspect_lexicon
from knowledge.text import Analyzer, normalize


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer()


def asked(analyzer: Analyzer, question: str) -> frozenset[str]:
    return analyzer.analyze_query(question).aspects


def unanswered(analyzer: Analyzer, question: str, article: str) -> tuple[str, ...]:
    lexicon = analyzer.aspects
    return lexicon.unanswered(asked(analyzer, question), lexicon.addressed(normalize(article)))


SAFE_BOX = (
    "保管箱（保险箱）租用。本行部分网点提供保管箱租用服务，年租金300-1200元不等，另需缴纳押金。"
    "租用需本人携带身份证和本行借记卡到开办网点签订租箱协议。"
)
GOLD = "实物黄金与积存金购买。按当日金价加工费计价，积存金每次最低1克起购，也可按月定投。"


def test_aspects_are_found_in_chinese_and_english_questions(analyzer: Analyzer) -> None:
    assert asked(analyzer, "保险箱里的东西丢了银行赔吗") == {"lost", "compensation"}
    assert asked(analyzer, "旅游险能退吗") == {"refund"}
    assert asked(analyzer, "港股分红怎么扣税") == {"tax"}
    assert asked(analyzer, "can I get a refund if I cancel") == {"refund", "cancel"}
    assert asked(analyzer, "how long does it take") == {"time"}


def test_a_chinese_marker_must_be_a_whole_word(analyzer: Analyzer) -> None:
    # 退 (refund) is a word in 能退吗 but only part of 退休 (retirement).
    assert "refund" not in asked(analyzer, "退休以后能领多少")
    # 风险 inside the product name 风险测评 is not a question about risk.
    assert "risk" not in asked(analyzer, "风险测评过期了怎么重新做")
    assert asked(analyzer, "这个理财有风险吗") == {"risk"}


def test_near_miss_on_the_same_product_is_unanswered(analyzer: Analyzer) -> None:
    assert unanswered(analyzer, "保险箱里的东西丢了银行赔吗", SAFE_BOX) == ("compensation", "lost")
    assert unanswered(analyzer, "存款证明能用外币开吗", SAFE_BOX) == ("currency",)
    # An answerable question on the same article, asked in other words than the article's.
    assert unanswered(analyzer, "保险箱一年租金多少", SAFE_BOX) == ()
    assert unanswered(analyzer, "租个保管箱一年多少钱", SAFE_BOX) == ()
    assert unanswered(analyzer, "开箱要带啥", SAFE_BOX) == ()


def test_how_much_about_a_price_needs_an_amount_of_money(analyzer: Analyzer) -> None:
    # The gold article names 金价 but quotes no price; "1克" answers how many grams, not the price.
    assert unanswered(analyzer, "金价今天多少一克", GOLD) == ("amount",)
    assert unanswered(analyzer, "积存金最少买多少克", GOLD) == ()
    # "Free" answers how much: 首年免年费 says the first year costs nothing.
    assert unanswered(analyzer, "信用卡年费多少钱", "普卡首年免年费，刷满6次免次年年费。") == ()


def test_how_much_interest_needs_a_rate_not_a_loan_amount(analyzer: Analyzer) -> None:
    loan = "助学贷款每年最高2万元，在读期间利息由财政全额补贴。"
    assert unanswered(analyzer, "助学贷款的利率是多少", loan) == ("amount",)
    assert unanswered(analyzer, "助学贷款的利率是多少", loan + "年利率为3.05%。") == ()
    # A rate deferred to an official source is addressed, as an agent would answer it.
    assert unanswered(analyzer, "利率是多少", "利率以网点公示为准。") == ()


def test_the_figure_must_be_stated_for_the_aspect_asked(analyzer: Analyzer) -> None:
    # The article mentions interest and quotes a percentage, but the 80 % is a share of the
    # study costs, in another statement: it says nothing about the loan's rate.
    study_loan = "留学贷款最高为学费和生活费总额的80%；宽限期内只还利息、不还本金。"
    assert unanswered(analyzer, "留学贷款现在的利率是多少", study_loan) == ("amount",)
    assert unanswered(analyzer, "留学贷款最多能贷多少", study_loan) == ()
    # Amounts of money that are benefits, next to a premium paid over a number of years.
    care = (
        "You choose the monthly benefit at purchase, from RMB 2,000 to RMB 10,000. "
        "Premiums are paid over 10, 15 or 20 years."
    )
    assert "fee" in asked(analyzer, "长期护理险一年保费大概要多少钱")
    assert unanswered(analyzer, "长期护理险一年保费大概要多少钱", care) != ()
    assert (
        unanswered(
            analyzer, "长期护理险一年保费大概要多少钱", care + " Premiums start at RMB 900 a year."
        )
        == ()
    )
    # The items of a list belong to its head: each card's fee is stated under "年费标准".
    fees = (
        "借记卡年费标准如下：普通卡免年费；金卡每年10元，日均资产达到5万元免收；白金卡每年100元。"
    )
    assert unanswered(analyzer, "金卡年费多少钱", fees) == ()
    assert unanswered(analyzer, "白金卡年费是多少", fees) == ()
    # English: "capped at" states a limit.
    cash = (
        "Overseas cash withdrawals are capped at the equivalent of RMB 100,000 per card per year."
    )
    assert unanswered(analyzer, "在国外一年最多能取多少现金", cash) == ()


def test_reminders_and_colloquial_refunds(analyzer: Analyzer) -> None:
    renewal = "Time deposits renew automatically at maturity for the same term at the new rate."
    question = "Will you send me a reminder before my time deposit renews?"
    assert unanswered(analyzer, question, renewal) == ("notify",)
    assert unanswered(analyzer, question, renewal + " We send you an SMS 7 days before.") == ()
    # 退回来 is one word to the segmenter: it still asks for a refund.
    fee = "金卡年费每年10元，于开卡周年月的次月扣收。"
    assert unanswered(analyzer, "年费已经扣了能退回来吗", fee) == ("refund",)
    assert unanswered(analyzer, "年费已经扣了能退回来吗", fee + "误扣的年费可申请退还。") == ()


def test_weekends_discounts_mistakes_renewals_and_coming_in(analyzer: Analyzer) -> None:
    home_visit = "行动不便的客户可申请上门服务，网点审核通过后3个工作日内安排工作人员上门。"
    assert unanswered(analyzer, "上门服务周末能预约吗", home_visit) == ("weekend",)
    transfers = "银证转账服务时间为交易日8:30-16:00，非交易日不能办理银证转账。"
    assert unanswered(analyzer, "周末能银证转帐吗", transfers) == ()
    # A trip on holiday is no question about the bank's closing days.
    assert "weekend" not in asked(analyzer, "lost my luggage on holiday, can I claim")
    fees = "固定管理费年费率一般为0.1%至0.5%，按日计提，已在产品净值中扣除。"
    assert unanswered(analyzer, "理财产品的管理费能打折吗", fees) == ("discount",)
    assert unanswered(analyzer, "理财产品的管理费能打折吗", fees + "持有满一年费率优惠五折。") == ()
    by_phone = "转账时只需输入对方手机号，系统会显示收款人姓名的部分字符，请核对后再确认。"
    assert unanswered(analyzer, "手机号转账转错人了钱能要回来吗", by_phone) == ("mistaken",)
    savings = "存本取息起存金额为5000元，存期分为一年、三年、五年三档，利息可按月支取。"
    assert unanswered(analyzer, "存本取息到期了没去取会自动转存吗", savings) == ("renewal",)
    assert unanswered(analyzer, "到期会自动转存吗", savings + "到期未支取的自动转存一年。") == ()
    leaving = "个人出境携带外币现钞超过等值5000美元的，须申领携带证。"
    assert unanswered(analyzer, "从国外回来入境带外币现金要申报吗", leaving) == ("inbound",)
    # "entering a PIN" is not entering the country.
    assert "inbound" not in asked(
        analyzer, "Up to what amount can I tap my card without entering a PIN?"
    )


def test_time_questions_need_a_time_expression(analyzer: Analyzer) -> None:
    assert unanswered(analyzer, "多久能到账", "转账需要输入验证码。") == ("time",)
    assert unanswered(analyzer, "多久能到账", "一般T+1个工作日到账。") == ()
    assert unanswered(analyzer, "when will it arrive", "Funds arrive in 1-3 business days.") == ()


def test_english_evidence_matches_inflections_but_not_longer_words(analyzer: Analyzer) -> None:
    travel = "Our travel insurance covers trip cancellation and lost baggage."
    # "cancellation" (of a trip) is not "cancel" (the policy): a refund question is unanswered.
    assert unanswered(analyzer, "旅游险能退吗", travel) == ("refund",)
    assert unanswered(analyzer, "can I cancel my policy", "You may cancel within 24 hours.") == ()
    assert unanswered(analyzer, "can I cancel it", "The plan can be cancelled any time.") == ()


def test_masked_words_are_not_evidence(analyzer: Analyzer) -> None:
    # 纳税记录 is a document to bring, not an answer about tax.
    loan = "经营贷款需提供营业执照、经营流水和纳税记录，年利率3.5%起。"
    assert unanswered(analyzer, "经营贷的利息能抵税吗", loan) == ("tax",)
    assert unanswered(analyzer, "利息能抵税吗", loan + "利息不能在个人所得税前扣除。") == ()


def test_the_bundled_vocabulary_loads_and_bad_rows_are_rejected() -> None:
    lexicon = aspect_lexicon()
    assert {"fee", "tax", "compensation", "refund", "lost", "amount", "time"} <= set(
        lexicon.aspects
    )
    assert lexicon.asked("要多少钱", ["要", "多少", "钱"]) == {"amount", "sum"}
    with pytest.raises(ValueError, match="unknown figures"):
        AspectLexicon([("x", "-", "多少", "#colour")])
    with pytest.raises(ValueError, match="twice"):
        AspectLexicon([("x", "-", "a", "b"), ("x", "-", "c", "d")])

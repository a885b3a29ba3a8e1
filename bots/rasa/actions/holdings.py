"""Which of their products a customer asks about, and the reply listing them.

The hub decides whether the customer may see anything and masks account numbers; this
module only picks the product kinds a question names and lays the hub's answer out with the
domain's `utter_holdings_*` responses.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any, Dict, List, Mapping, Sequence

from actions.turn import render

# Product kinds as the hub stores them, with the words customers use for each. A question
# naming none of them ("我名下有哪些产品") gets every kind.
KIND_WORDS: Dict[str, Sequence[str]] = {
    "wealth": ("理财", "基金", "净值", r"\bwealth\b", r"\bfunds?\b", r"\binvestments?\b"),
    "deposit": (
        "存款",
        "存单",
        "定期",
        "活期",
        "余额",
        r"\bdeposits?\b",
        r"\bcds?\b",
        r"\bsavings\b",
        r"\bbalance\b",
    ),
    "loan": ("贷款", "房贷", "车贷", "借款", "还款", r"\bloans?\b", r"\bmortgages?\b"),
    "insurance": ("保险", "保单", r"\binsurance\b", r"\bpolic(?:y|ies)\b"),
    "securities": ("证券", "股票", "持仓", r"\bsecurities\b", r"\bstocks?\b", r"\bshares\b"),
    "card": ("信用卡", "借记卡", "银行卡", r"\bcards?\b"),
}
KIND_ORDER = tuple(KIND_WORDS)
_PATTERNS = {
    kind: re.compile("|".join(words), re.IGNORECASE) for kind, words in KIND_WORDS.items()
}


def kinds_asked(text: str) -> List[str]:
    """Return the product kinds a question names (empty: it names none, so all of them)."""
    return [kind for kind in KIND_ORDER if _PATTERNS[kind].search(text)]


def render_holdings(
    domain: Mapping[str, Any],
    language: str,
    kinds: Sequence[str],
    items: Sequence[Mapping[str, Any]],
) -> str:
    """Lay out the products, soonest maturity first within each kind."""
    if not items:
        return render(domain, "utter_holdings_none", language)
    lines = [_line(domain, language, item) for item in sorted(items, key=_order)]
    header = f"utter_holdings_{kinds[0]}" if len(kinds) == 1 else "utter_holdings_all"
    return render(domain, header, language, items="\n".join(lines))


def _order(item: Mapping[str, Any]) -> tuple:
    kind = str(item.get("kind"))
    rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    return (rank, item.get("maturity_date") or "9999-12-31", str(item.get("product_name")))


def _line(domain: Mapping[str, Any], language: str, item: Mapping[str, Any]) -> str:
    maturity = item.get("maturity_date")
    return render(
        domain,
        "utter_holdings_item" if maturity else "utter_holdings_item_open_ended",
        language,
        product=item.get("product_name") or "",
        account=item.get("account") or "-",
        maturity=maturity or "",
        amount=_amount(item.get("amount")),
        currency=item.get("currency") or "",
    )


def _amount(value: Any) -> str:
    try:
        return f"{Decimal(str(value)):,.2f}"
    except (InvalidOperation, ValueError):
        return "-"

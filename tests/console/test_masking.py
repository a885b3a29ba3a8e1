"""Masking: card, national ID, account and phone numbers, in fields and in free text."""

from __future__ import annotations

import pytest

from agent_console.masking import (
    is_luhn_valid,
    is_national_id,
    mask_account_number,
    mask_for,
    mask_national_id,
    mask_pan,
    mask_phone,
    mask_text,
)
from hub.permissions import Role


def test_field_formats_follow_the_contract() -> None:
    assert mask_pan("6225881234561234") == "622588******1234"
    assert mask_national_id("110105199007080730") == "110***********0730"
    assert mask_phone("+8613812345678") == "+86 138****5678"
    assert mask_phone("13812345678") == "+86 138****5678"  # read in the default region
    assert mask_phone("+447911123456") == "+44 791***3456"


def test_luhn_and_id_checks() -> None:
    assert is_luhn_valid("4111111111111111")
    assert not is_luhn_valid("4111111111111112")
    assert is_national_id("310115196804120359")
    assert is_national_id("94425019941202026X")
    assert not is_national_id("310115196804120358")  # wrong check digit


def test_account_numbers_keep_only_what_may_be_shown() -> None:
    assert mask_account_number("6219997110665803518") == "621999*********3518"  # a card
    assert mask_account_number("6219997110665803519") == "***************3519"  # not a card
    assert mask_account_number("A386201547") == "A*****1547"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("我的卡号是 4111 1111 1111 1111 谢谢", "我的卡号是 4111 11** **** 1111 谢谢"),
        ("卡号4111-1111-1111-1111", "卡号4111-11**-****-1111"),
        ("身份证310115196804120359", "身份证310***********0359"),
        # An ID with a wrong check digit is still somebody's ID (mistyped): mask it too.
        ("身份证310115196804120358", "身份证310***********0358"),
        ("手机13812345678，打给我", "手机138****5678，打给我"),
        ("call me on +86 138 1234 5678", "call me on +86 138 **** 5678"),
        ("account 6219997110665803519 please", "account ***************3519 please"),
    ],
)
def test_free_text_is_masked(text: str, masked: str) -> None:
    assert mask_text(text) == masked
    assert mask_text(masked) == masked  # masking twice changes nothing


@pytest.mark.parametrize(
    "text",
    [
        "转账金额1286540.32元，手续费8,178.00元",
        "到期日 2027-03-15，收益率 2.60%-3.10%",
        "理赔号 CLM-2026-1107-55821，工单 CASE-20261121-0107",
        "产品代码 HBW-S180-026，第26期",
        "",
    ],
)
def test_ordinary_numbers_are_left_alone(text: str) -> None:
    assert mask_text(text) == text


def test_only_roles_that_may_reveal_see_chat_text_as_written() -> None:
    text = "卡号 4111 1111 1111 1111"
    assert mask_for(Role.AGENT, text) == "卡号 4111 11** **** 1111"
    assert mask_for(Role.EDITOR, text) == "卡号 4111 11** **** 1111"
    assert mask_for(Role.SUPERVISOR, text) == text
    assert mask_for(Role.ADMIN, text) == text

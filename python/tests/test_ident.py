"""The canonicalisers from Python: the node's own code, checked against plain Python
implementations of the check digits and against the variants real dumps contain."""

from __future__ import annotations

import random

import pytest

import suyuan

WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
CHECK = "10X98765432"


def id_check(body: str) -> str:
    """ISO 7064 MOD 11-2, written out independently of the Rust code."""
    return CHECK[sum(int(c) * w for c, w in zip(body, WEIGHTS)) % 11]


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


@pytest.mark.parametrize(
    "raw",
    [
        "13800138000",
        "+86 138-0013-8000",
        "0086 13800138000",
        "１３８００１３８０００",
        "(+86) 138.0013.8000",
        "138\u30000013\t8000",
    ],
)
def test_mobile_variants_canonicalise_alike(raw: str) -> None:
    assert suyuan.canonical_mobile(raw) == "13800138000"
    assert suyuan.canonicalize("mobile", raw) == "13800138000"


@pytest.mark.parametrize(
    "raw",
    ["11010519491231002X", "110105-19491231-002x", "１１０１０５１９４９１２３１００２Ｘ", "110105491231002"],
)
def test_resident_id_variants_and_the_15_digit_upgrade(raw: str) -> None:
    assert suyuan.canonical_resident_id(raw) == "11010519491231002X"


@pytest.mark.parametrize(
    ("kind", "raw", "reason"),
    [
        ("mobile", "138a0013800", "bad_character"),
        ("mobile", "1380013800", "wrong_length"),
        ("mobile", "12800138000", "bad_prefix"),
        ("resident_id", "110105194912310021", "bad_check_digit"),
        ("resident_id", "11010519491331002X", "bad_date"),
        ("bank_card", "6222020200112345670", "bad_luhn"),
        ("email", "not-an-address", "malformed"),
        ("name_birthdate", "张三 19491231", "malformed"),
    ],
)
def test_every_rejection_reason_is_typed(kind: str, raw: str, reason: str) -> None:
    with pytest.raises(suyuan.InvalidIdentifier) as info:
        suyuan.canonicalize(kind, raw)
    assert info.value.kind == kind
    assert info.value.reason == reason
    assert str(info.value) == f"{kind}: {suyuan.REJECTIONS[reason]}"
    assert isinstance(info.value, ValueError)


def test_rejections_listed_in_full() -> None:
    assert set(suyuan.REJECTIONS) == {
        "bad_character",
        "wrong_length",
        "bad_prefix",
        "bad_check_digit",
        "bad_date",
        "bad_luhn",
        "malformed",
    }
    assert suyuan.REJECTIONS["bad_check_digit"] == "wrong check digit"


def test_resident_id_check_digit_agrees_with_iso_7064_over_random_ids() -> None:
    rng = random.Random(20261201)
    for _ in range(2000):
        body = f"{rng.randrange(110000, 660000)}{rng.randrange(1950, 2010)}{rng.randrange(1, 13):02}{rng.randrange(1, 29):02}{rng.randrange(0, 1000):03}"
        good = body + id_check(body)
        assert suyuan.canonical_resident_id(good.lower()) == good
        wrong = body + next(c for c in CHECK if c != id_check(body))
        with pytest.raises(suyuan.InvalidIdentifier) as info:
            suyuan.canonical_resident_id(wrong)
        assert info.value.reason == "bad_check_digit"


def test_bank_card_accepts_exactly_the_luhn_valid_numbers() -> None:
    rng = random.Random(7)
    accepted = 0
    for _ in range(3000):
        card = "62" + "".join(rng.choice("0123456789") for _ in range(rng.randrange(14, 18)))
        if luhn_ok(card):
            accepted += 1
            assert suyuan.canonical_bank_card(" ".join([card[:4], card[4:]])) == card
        else:
            with pytest.raises(suyuan.InvalidIdentifier) as info:
                suyuan.canonical_bank_card(card)
            assert info.value.reason == "bad_luhn"
    assert 200 < accepted < 400  # one in ten, so the test saw both outcomes


def test_names_dates_emails_and_composites() -> None:
    assert suyuan.canonical_name(" 张\u3000慧 ") == "张慧"
    assert suyuan.canonical_name("买买提•艾力") == "买买提·艾力"
    assert suyuan.canonical_birthdate("1949年12月31日") == "19491231"
    assert suyuan.canonical_birthdate("1949-12-31 00:00:00") == "19491231"
    assert suyuan.canonical_email("  Zhang.San@QQ.com ") == "zhang.san@qq.com"
    assert suyuan.canonicalize("name_birthdate", "张 慧|1949/12/31") == "张慧|19491231"
    assert suyuan.canonicalize("name+mobile", "张慧|+86 13800138000") == "张慧|13800138000"
    with pytest.raises(suyuan.InvalidIdentifier) as info:
        suyuan.canonical_birthdate("1999-02-29")
    assert (info.value.kind, info.value.reason) == ("birthdate", "bad_date")


def test_oprf_input_is_the_type_tag_a_zero_byte_and_the_canonical_value() -> None:
    assert suyuan.oprf_input("mobile", "+86 138 0013 8000") == b"mobile\x0013800138000"
    assert suyuan.oprf_input("resident_id", "11010519491231002x") == b"resident_id\x0011010519491231002X"


def test_unknown_key_type_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r'unknown key type "phone" \(known: mobile, resident_id'):
        suyuan.canonicalize("phone", "13800138000")
    assert suyuan.KEY_TYPES == (
        "mobile",
        "resident_id",
        "bank_card",
        "email",
        "name_birthdate",
        "name_mobile",
    )


def test_non_str_values_are_refused_by_type() -> None:
    with pytest.raises(TypeError):
        suyuan.canonical_mobile(13800138000)  # type: ignore[arg-type]

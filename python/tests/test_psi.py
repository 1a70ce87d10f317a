"""psi_local against a plain set computation: the same answer, whichever mode, however the
values are written; bad rows refused with where and why."""

from __future__ import annotations

import random
from typing import List, Mapping, Sequence, Union

import pytest

import suyuan

Row = Mapping[str, Union[str, Sequence[str]]]


def mobile(rng: random.Random) -> str:
    return f"1{rng.choice('3456789')}{rng.randrange(10**9):09}"


def messy(m: str, rng: random.Random) -> str:
    """The same number written as dumps write it."""
    return rng.choice([m, f"+86 {m[:3]}-{m[3:7]}-{m[7:]}", "".join(chr(ord(c) + 0xFEE0) for c in m)])


def world(seed: int) -> tuple[List[Row], List[Row], List[str]]:
    rng = random.Random(seed)
    people = list({mobile(rng) for _ in range(3000)})
    holder = rng.sample(people, 1200)
    dump = rng.sample(people, 900)
    holder_rows: List[Row] = [{"mobile": m} for m in holder]
    querier_rows: List[Row] = [{"mobile": messy(m, rng)} for m in dump]
    return holder_rows, querier_rows, dump


@pytest.mark.parametrize("seed", [1, 2])
def test_matches_mode_agrees_with_a_plain_intersection(seed: int) -> None:
    holder_rows, querier_rows, dump = world(seed)
    held = {r["mobile"] for r in holder_rows}
    expected_rows = [i for i, m in enumerate(dump) if m in held]
    result = suyuan.psi_local(holder_rows, querier_rows, "matches")
    assert result["mode"] == "matches"
    assert result["matched_keys"] == {"mobile": len(expected_rows)}
    assert result["matched_rows"] == expected_rows
    assert result["holder_keys"] == {"mobile": len(held)}
    assert result["querier_keys"] == {"mobile": len(set(dump))}
    assert result["querier_rows"] == len(dump)
    assert result["rejected"] == []
    assert 0 < len(expected_rows) < len(dump)


def test_count_mode_gives_the_count_and_no_rows() -> None:
    holder_rows, querier_rows, dump = world(3)
    held = {r["mobile"] for r in holder_rows}
    result = suyuan.psi_local(holder_rows, querier_rows, mode="count")
    assert result["mode"] == "count"
    assert result["matched_keys"] == {"mobile": len(held & set(dump))}
    assert result["matched_rows"] is None


def test_rows_with_several_keys_and_types_and_duplicates() -> None:
    holder: List[Row] = [
        {"mobile": ["13800138000", "13912345678"], "resident_id": "11010519491231002X"},
        {"mobile": "13800138000"},  # the same customer twice: one distinct key
        {"email": "zhang.san@qq.com"},
    ]
    querier: List[Row] = [
        {"resident_id": "110105491231002"},  # the 15-digit form of the same ID
        {"mobile": "15000000000", "email": "ZHANG.SAN@QQ.COM"},
        {},
        {"mobile": ["139 1234 5678", "13800138000"]},
    ]
    result = suyuan.psi_local(holder, querier, "matches")
    assert result["matched_rows"] == [0, 1, 3]
    assert result["matched_keys"] == {"mobile": 2, "resident_id": 1, "email": 1}
    assert result["holder_keys"]["mobile"] == 2
    assert result["querier_rows"] == 4


def test_invalid_values_are_listed_never_dropped_silently() -> None:
    holder: List[Row] = [{"mobile": "13800138000"}, {"mobile": ["12800138000", " "]}]
    querier: List[Row] = [{"mobile": "1380013800"}, {"resident_id": "110105194912310021"}, {"mobile": "13800138000"}]
    result = suyuan.psi_local(holder, querier, "matches")
    assert result["matched_rows"] == [2]
    assert result["rejected"] == [
        {"side": "holder", "row": 1, "key_type": "mobile", "reason": "bad_prefix"},
        {"side": "querier", "row": 0, "key_type": "mobile", "reason": "wrong_length"},
        {"side": "querier", "row": 1, "key_type": "resident_id", "reason": "bad_check_digit"},
    ]


def test_bad_rows_are_refused_with_where() -> None:
    ok: List[Row] = [{"mobile": "13800138000"}]
    with pytest.raises(ValueError, match=r'querier_rows\[1\]: unknown key type "phone"'):
        suyuan.psi_local(ok, [{"mobile": "13800138000"}, {"phone": "13800138000"}])
    with pytest.raises(TypeError, match=r"holder_rows\[0\]: expected a mapping from key type to value, got list"):
        suyuan.psi_local([["13800138000"]], ok)  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r'querier_rows\[0\]\["mobile"\]: expected a str or a sequence of str, got int'):
        suyuan.psi_local(ok, [{"mobile": 13800138000}])  # type: ignore[dict-item]
    with pytest.raises(TypeError, match=r"got a sequence holding NoneType"):
        suyuan.psi_local(ok, [{"mobile": ["13800138000", None]}])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r'unknown mode "both" \("count" or "matches"\)'):
        suyuan.psi_local(ok, ok, "both")


def test_an_empty_side_is_an_empty_answer() -> None:
    ok: List[Row] = [{"mobile": "13800138000"}]
    assert suyuan.psi_local([], ok, "matches")["matched_rows"] == []
    empty = suyuan.psi_local(ok, [], "count")
    assert (empty["matched_keys"], empty["querier_rows"]) == ({}, 0)

"""The shapes of :func:`suyuan.psi_local`'s result, for type checkers and readers."""

from __future__ import annotations

from typing import Dict, List, Literal, Optional, TypedDict


class Rejected(TypedDict):
    """A value :func:`suyuan.psi_local` could not use, and why (never a silent drop)."""

    side: Literal["holder", "querier"]
    #: 0-based index of the row in the list given.
    row: int
    key_type: str
    #: A key of :data:`suyuan.REJECTIONS`, e.g. ``"wrong_length"``.
    reason: str


class PsiResult(TypedDict):
    """What the querier learns from one run, as the node's report says it per peer."""

    mode: Literal["count", "matches"]
    #: Bytes of each tag on the wire (ℓ), chosen from both set sizes.
    tag_len: int
    #: Rows of the querier's list, with or without keys.
    querier_rows: int
    #: Distinct querier keys per key type.
    querier_keys: Dict[str, int]
    #: The holder's distinct keys per key type, for the querier's key types.
    holder_keys: Dict[str, int]
    #: Distinct querier keys found in the holder's set, per key type.
    matched_keys: Dict[str, int]
    #: ``matches`` mode: 0-based indices of querier rows with a matched key, ascending;
    #: ``None`` in ``count`` mode, where the querier learns sizes only.
    matched_rows: Optional[List[int]]
    rejected: List[Rejected]

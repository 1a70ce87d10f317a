"""suyuan (溯源): private set intersection for tracing leaked personal records.

The Python face of the Rust crate ``suyuan-protocol``, for researchers:

- the identifier canonicalisers the node runs on every CSV cell, with their rejection reasons
  (:func:`canonicalize`, :func:`canonical_mobile`, ... raising :class:`InvalidIdentifier`);
- the RFC 9497 OPRF and VOPRF on ristretto255-SHA512 (:mod:`suyuan.oprf`);
- a whole PSI run in this process (:func:`psi_local`), through the same sessions and wire
  encoding as two nodes over QUIC.

The node itself (``suyuan serve``, ``suyuan query``) is the Rust binary; see the project's README.
"""

from __future__ import annotations

from . import oprf
from ._native import (
    KEY_TYPES,
    REJECTIONS,
    InvalidIdentifier,
    OprfError,
    PsiError,
    __version__,
    canonical_bank_card,
    canonical_birthdate,
    canonical_email,
    canonical_mobile,
    canonical_name,
    canonical_resident_id,
    canonicalize,
    oprf_input,
    psi_local,
)
from ._types import PsiResult, Rejected

__all__ = [
    "KEY_TYPES",
    "REJECTIONS",
    "InvalidIdentifier",
    "OprfError",
    "PsiError",
    "PsiResult",
    "Rejected",
    "__version__",
    "canonical_bank_card",
    "canonical_birthdate",
    "canonical_email",
    "canonical_mobile",
    "canonical_name",
    "canonical_resident_id",
    "canonicalize",
    "oprf",
    "oprf_input",
    "psi_local",
]

"""Type stubs of the compiled module ``suyuan._native`` (python/src/*.rs)."""

from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ._types import PsiResult

__all__ = [
    "InvalidIdentifier",
    "OprfError",
    "PsiError",
    "KEY_TYPES",
    "REJECTIONS",
    "canonicalize",
    "oprf_input",
    "canonical_mobile",
    "canonical_resident_id",
    "canonical_bank_card",
    "canonical_email",
    "canonical_name",
    "canonical_birthdate",
    "oprf_derive_key_pair",
    "oprf_generate_key",
    "oprf_public_key",
    "oprf_blind",
    "oprf_blind_evaluate",
    "voprf_blind_evaluate",
    "oprf_finalize",
    "voprf_finalize",
    "oprf_evaluate",
    "psi_local",
    "__version__",
]

__version__: str
KEY_TYPES: Tuple[str, ...]
REJECTIONS: Dict[str, str]

class InvalidIdentifier(ValueError):
    """A value that is not a valid identifier of its kind; ``kind`` and ``reason`` say which and why."""

    kind: str
    reason: str

class OprfError(ValueError):
    """An RFC 9497 operation refused its input (``reason``: invalid_element, verify_failed, ...)."""

    reason: str

class PsiError(RuntimeError):
    """A PSI run that could not complete; the message says which step and why."""

def canonicalize(key_type: str, value: str) -> str: ...
def oprf_input(key_type: str, value: str) -> bytes: ...
def canonical_mobile(value: str) -> str: ...
def canonical_resident_id(value: str) -> str: ...
def canonical_bank_card(value: str) -> str: ...
def canonical_email(value: str) -> str: ...
def canonical_name(value: str) -> str: ...
def canonical_birthdate(value: str) -> str: ...
def oprf_derive_key_pair(seed: bytes, info: bytes, mode_name: str) -> Tuple[bytes, bytes]: ...
def oprf_generate_key() -> bytes: ...
def oprf_public_key(secret_key_bytes: bytes) -> bytes: ...
def oprf_blind(
    inputs: List[bytes], mode_name: str, given_blinds: Optional[List[bytes]] = None
) -> Tuple[List[bytes], List[bytes]]: ...
def oprf_blind_evaluate(secret_key_bytes: bytes, blinded: List[bytes]) -> List[bytes]: ...
def voprf_blind_evaluate(
    secret_key_bytes: bytes, blinded: List[bytes], nonce: Optional[bytes] = None
) -> Tuple[List[bytes], bytes]: ...
def oprf_finalize(
    inputs: List[bytes], given_blinds: List[bytes], evaluated: List[bytes]
) -> List[bytes]: ...
def voprf_finalize(
    public_key: bytes,
    inputs: List[bytes],
    given_blinds: List[bytes],
    blinded: List[bytes],
    evaluated: List[bytes],
    proof: bytes,
) -> List[bytes]: ...
def oprf_evaluate(secret_key_bytes: bytes, input: bytes, mode_name: str) -> bytes: ...
def psi_local(
    holder_rows: Iterable[Mapping[str, Union[str, Sequence[str]]]],
    querier_rows: Iterable[Mapping[str, Union[str, Sequence[str]]]],
    mode: str = "count",
) -> PsiResult: ...

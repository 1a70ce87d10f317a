"""RFC 9497 OPRF and VOPRF on ristretto255-SHA512 (suite ``ristretto255-SHA512``).

The same client and server code that suyuan checks against every vector of RFC 9497
Appendix A.1. Elements and scalars are 32-byte strings, ``Finalize`` outputs 64 bytes, proofs 64.
Functions take and return lists, one entry per input (the RFC's batched forms); a batch of one
is the RFC's single-element form.

Two modes: ``"oprf"`` (``modeOPRF``) and ``"voprf"`` (``modeVOPRF``, the server proves with a
batched DLEQ proof that it used the key behind its public key). POPRF is not implemented.

Secret keys and blinds come back as :class:`bytes`, which Python cannot wipe from memory; keep
them out of logs and files you do not mean to keep.
"""

from __future__ import annotations

from typing import List, Literal, Optional, Sequence, Tuple

from . import _native

Mode = Literal["oprf", "voprf"]

__all__ = [
    "Mode",
    "blind",
    "blind_evaluate",
    "derive_key_pair",
    "evaluate",
    "finalize",
    "generate_key",
    "public_key",
    "verifiable_blind_evaluate",
    "verifiable_finalize",
]


def derive_key_pair(seed: bytes, info: bytes, mode: Mode = "oprf") -> Tuple[bytes, bytes]:
    """``DeriveKeyPair(seed, info)`` (section 3.2.1): ``(skS, pkS)`` from a 32-byte seed."""
    return _native.oprf_derive_key_pair(seed, info, mode)


def generate_key() -> bytes:
    """A uniformly random secret key ``skS`` from the operating system's generator."""
    return _native.oprf_generate_key()


def public_key(secret_key: bytes) -> bytes:
    """``pkS = skS·G``, serialized."""
    return _native.oprf_public_key(secret_key)


def blind(
    inputs: Sequence[bytes], mode: Mode = "oprf", blinds: Optional[Sequence[bytes]] = None
) -> Tuple[List[bytes], List[bytes]]:
    """``Blind(input)`` for each input: ``(blinds, blinded_elements)``.

    Blinds are drawn fresh unless given (to replay a transcript, such as the RFC's vectors).
    Raises :class:`suyuan.OprfError` with ``reason="invalid_input"`` if an input hashes to
    the identity.
    """
    return _native.oprf_blind(list(inputs), mode, None if blinds is None else list(blinds))


def blind_evaluate(secret_key: bytes, blinded: Sequence[bytes]) -> List[bytes]:
    """``BlindEvaluate(skS, blindedElement)`` in ``modeOPRF``, for each element.

    A non-canonical or identity element fails the whole batch (``reason="invalid_element"``).
    """
    return _native.oprf_blind_evaluate(secret_key, list(blinded))


def verifiable_blind_evaluate(
    secret_key: bytes, blinded: Sequence[bytes], nonce: Optional[bytes] = None
) -> Tuple[List[bytes], bytes]:
    """``BlindEvaluateBatch`` in ``modeVOPRF``: ``(evaluated_elements, proof)``.

    One batched DLEQ proof covers every element. The proof nonce is drawn fresh unless given;
    a nonce used twice with one key reveals the key, so give one only to replay a transcript.
    """
    return _native.voprf_blind_evaluate(secret_key, list(blinded), nonce)


def finalize(
    inputs: Sequence[bytes], blinds: Sequence[bytes], evaluated: Sequence[bytes]
) -> List[bytes]:
    """``Finalize(input, blind, evaluatedElement)`` in ``modeOPRF``: 64-byte outputs."""
    return _native.oprf_finalize(list(inputs), list(blinds), list(evaluated))


def verifiable_finalize(
    public_key: bytes,
    inputs: Sequence[bytes],
    blinds: Sequence[bytes],
    blinded: Sequence[bytes],
    evaluated: Sequence[bytes],
    proof: bytes,
) -> List[bytes]:
    """``Finalize`` in ``modeVOPRF``: verifies the proof against ``pkS``, then unblinds.

    A proof that does not verify raises :class:`suyuan.OprfError` with
    ``reason="verify_failed"``.
    """
    return _native.voprf_finalize(
        public_key, list(inputs), list(blinds), list(blinded), list(evaluated), proof
    )


def evaluate(secret_key: bytes, input: bytes, mode: Mode = "oprf") -> bytes:
    """``Evaluate(skS, input)`` (section 3.3.1): the output a client would get, computed by the
    key's owner directly."""
    return _native.oprf_evaluate(secret_key, input, mode)

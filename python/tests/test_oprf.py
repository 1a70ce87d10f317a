"""RFC 9497 Appendix A.1 (ristretto255-SHA512), every vector of modes OPRF and VOPRF,
reproduced byte for byte from Python; then refusals and a random round trip."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List

import pytest

import suyuan
from suyuan import oprf

VECTORS = Path(__file__).resolve().parents[2] / "protocol" / "tests" / "vectors" / "rfc9497-ristretto255-sha512.json"


def suites() -> List[Dict[str, Any]]:
    data = json.loads(VECTORS.read_text())
    assert "RFC 9497" in data["provenance"]["standard"]
    return list(data["suites"])


def suite(mode: int) -> Dict[str, Any]:
    (s,) = [s for s in suites() if s["mode"] == mode]
    assert s["identifier"] == "ristretto255-SHA512"
    return s


def hexes(s: str) -> List[bytes]:
    return [bytes.fromhex(x) for x in s.split(",")]


def test_the_vector_file_holds_what_the_rfc_lists() -> None:
    # Pinned: a file that lost vectors would otherwise pass with fewer checks.
    assert [(s["mode"], len(s["vectors"])) for s in suites()] == [(0, 2), (1, 3), (2, 3)]


@pytest.mark.parametrize(("mode", "name"), [(0, "oprf"), (1, "voprf")])
def test_derive_key_pair(mode: int, name: oprf.Mode) -> None:
    s = suite(mode)
    sk, pk = oprf.derive_key_pair(bytes.fromhex(s["seed"]), bytes.fromhex(s["keyInfo"]), name)
    assert sk.hex() == s["skSm"]
    assert oprf.public_key(sk) == pk
    if "pkSm" in s:
        assert pk.hex() == s["pkSm"]


def test_mode_oprf_vectors() -> None:
    s = suite(0)
    sk = bytes.fromhex(s["skSm"])
    for v in s["vectors"]:
        inputs = hexes(v["Input"])
        blinds, blinded = oprf.blind(inputs, "oprf", hexes(v["Blind"]))
        assert blinds == hexes(v["Blind"])
        assert blinded == hexes(v["BlindedElement"])
        evaluated = oprf.blind_evaluate(sk, blinded)
        assert evaluated == hexes(v["EvaluationElement"])
        assert oprf.finalize(inputs, blinds, evaluated) == hexes(v["Output"])
        assert [oprf.evaluate(sk, x, "oprf") for x in inputs] == hexes(v["Output"])


def test_mode_voprf_vectors_including_the_batch() -> None:
    s = suite(1)
    sk, pk = bytes.fromhex(s["skSm"]), bytes.fromhex(s["pkSm"])
    assert [v["Batch"] for v in s["vectors"]] == [1, 1, 2]
    for v in s["vectors"]:
        inputs = hexes(v["Input"])
        blinds, blinded = oprf.blind(inputs, "voprf", hexes(v["Blind"]))
        assert blinded == hexes(v["BlindedElement"])
        evaluated, proof = oprf.verifiable_blind_evaluate(sk, blinded, bytes.fromhex(v["Proof"]["r"]))
        assert evaluated == hexes(v["EvaluationElement"])
        assert proof.hex() == v["Proof"]["proof"]
        out = oprf.verifiable_finalize(pk, inputs, blinds, blinded, evaluated, proof)
        assert out == hexes(v["Output"])
        assert [oprf.evaluate(sk, x, "voprf") for x in inputs] == hexes(v["Output"])

        tampered = bytearray(proof)
        tampered[5] ^= 1
        with pytest.raises(suyuan.OprfError) as info:
            oprf.verifiable_finalize(pk, inputs, blinds, blinded, evaluated, bytes(tampered))
        assert info.value.reason == "verify_failed"
        assert str(info.value) == "finalize: verification failed"
        if len(evaluated) > 1:
            with pytest.raises(suyuan.OprfError):
                oprf.verifiable_finalize(pk, inputs, blinds, blinded, evaluated[::-1], proof)


def test_poprf_is_not_offered() -> None:
    with pytest.raises(ValueError, match="not POPRF"):
        oprf.derive_key_pair(bytes(32), b"", "poprf")  # type: ignore[arg-type]


def test_a_fresh_run_agrees_with_evaluate_and_a_wrong_key_does_not() -> None:
    sk = oprf.generate_key()
    other = oprf.generate_key()
    inputs = [os.urandom(n) for n in (0, 1, 17, 300)]
    for mode in ("oprf", "voprf"):
        blinds, blinded = oprf.blind(inputs, mode)
        assert len(set(blinds)) == len(inputs)
        if mode == "oprf":
            evaluated = oprf.blind_evaluate(sk, blinded)
            out = oprf.finalize(inputs, blinds, evaluated)
        else:
            evaluated, proof = oprf.verifiable_blind_evaluate(sk, blinded)
            out = oprf.verifiable_finalize(oprf.public_key(sk), inputs, blinds, blinded, evaluated, proof)
            with pytest.raises(suyuan.OprfError) as info:
                oprf.verifiable_finalize(oprf.public_key(other), inputs, blinds, blinded, evaluated, proof)
            assert info.value.reason == "verify_failed"
        assert out == [oprf.evaluate(sk, x, mode) for x in inputs]
        assert out != [oprf.evaluate(other, x, mode) for x in inputs]
        assert all(len(o) == 64 for o in out)


def test_malformed_arguments_are_refused_with_what_and_why() -> None:
    sk = oprf.generate_key()
    with pytest.raises(suyuan.OprfError) as info:
        oprf.blind_evaluate(sk, [b"\x01" * 31])
    assert (info.value.reason, str(info.value)) == ("wrong_length", "blinded[0]: 31 bytes, expected 32")
    with pytest.raises(suyuan.OprfError) as info:
        oprf.blind_evaluate(sk, [bytes(32)])  # the identity
    assert info.value.reason == "invalid_element"
    with pytest.raises(suyuan.OprfError) as info:
        oprf.blind_evaluate(sk, [b"\xff" * 32])  # not a canonical encoding
    assert info.value.reason == "invalid_element"
    with pytest.raises(suyuan.OprfError) as info:
        oprf.public_key(bytes(32))
    assert (info.value.reason, str(info.value)) == ("invalid_scalar", "secret key: invalid scalar")
    with pytest.raises(suyuan.OprfError) as info:
        oprf.blind([b"x"], "oprf", [bytes(32)])
    assert (info.value.reason, str(info.value)) == ("invalid_scalar", "blinds[0]: invalid scalar")
    with pytest.raises(suyuan.OprfError) as info:
        oprf.finalize([b"x", b"y"], [oprf.generate_key()], [bytes(32)])
    assert info.value.reason == "length_mismatch"
    with pytest.raises(suyuan.OprfError) as info:
        oprf.derive_key_pair(b"short", b"")
    assert info.value.reason == "wrong_length"
    with pytest.raises(TypeError):
        oprf.blind(["text, not bytes"])  # type: ignore[list-item]

#!/usr/bin/env python3
"""Golden test vectors of the suyuan PSI protocol, version 3 (docs/protocol.md section 8).

An independent implementation, written from the specification and the RFCs only (RFC 9380
expand_message_xmd, RFC 9496 ristretto255, RFC 9497 OPRF and its batched DLEQ proof), so that the
Rust code can be checked against something that does not share its bugs. Group arithmetic comes
from libsodium through ctypes; everything protocol-specific (inputs, tags, message encoding,
session flow, proof nonces) is here.

Run from the repository root:  python3 docs/vectors/golden.py
"""
import ctypes
import hashlib
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RFC_JSON = os.path.join(ROOT, "protocol", "tests", "vectors", "rfc9497-ristretto255-sha512.json")

sodium = ctypes.CDLL("/usr/lib/x86_64-linux-gnu/libsodium.so.23")
assert sodium.sodium_init() >= 0

L = 2**252 + 27742317777372353535851937790883648493  # order of ristretto255


# --- Scalars: Python ints mod L, 32 bytes little-endian on the wire -----------------------------

def s2b(s: int) -> bytes:
    return s.to_bytes(32, "little")


def b2s(b: bytes) -> int:
    s = int.from_bytes(b, "little")
    assert s < L, "non-canonical scalar encoding"
    return s


def inv(s: int) -> int:
    """a^-1 mod L, cross-checked against libsodium so both scalar paths agree."""
    out = ctypes.create_string_buffer(32)
    assert sodium.crypto_core_ristretto255_scalar_invert(out, s2b(s)) == 0
    assert out.raw == s2b(pow(s, -1, L))
    return pow(s, -1, L)


def smul(x: int, y: int) -> int:
    out = ctypes.create_string_buffer(32)
    sodium.crypto_core_ristretto255_scalar_mul(out, s2b(x), s2b(y))
    assert out.raw == s2b(x * y % L)
    return x * y % L


def ssub(x: int, y: int) -> int:
    out = ctypes.create_string_buffer(32)
    sodium.crypto_core_ristretto255_scalar_sub(out, s2b(x), s2b(y))
    assert out.raw == s2b((x - y) % L)
    return (x - y) % L


def reduce64(b: bytes) -> int:
    assert len(b) == 64
    out = ctypes.create_string_buffer(32)
    sodium.crypto_core_ristretto255_scalar_reduce(out, b)
    assert out.raw == s2b(int.from_bytes(b, "little") % L)
    return b2s(out.raw)


# --- Group: ristretto255 elements as their 32-byte encodings -------------------------------------

def mul(s: int, p: bytes) -> bytes:
    """SerializeElement(s * DeserializeElement(p)). libsodium rejects non-canonical encodings
    and returns -1 for an identity result, which the protocol treats as invalid as well."""
    assert 0 < s < L
    q = ctypes.create_string_buffer(32)
    if sodium.crypto_scalarmult_ristretto255(q, s2b(s), p) != 0:
        raise ValueError("invalid element")
    return q.raw


# RFC 9496 section 4.4: the encoding of the generator B (the RFC 9497 G.Generator()).
GENERATOR = bytes.fromhex("e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76")


def mul_base(s: int) -> bytes:
    """SerializeElement(s * G), cross-checked against the variable-base path on G's encoding."""
    assert 0 < s < L
    q = ctypes.create_string_buffer(32)
    assert sodium.crypto_scalarmult_ristretto255_base(q, s2b(s)) == 0
    assert q.raw == mul(s, GENERATOR)
    return q.raw


def add(p: bytes, q: bytes) -> bytes:
    """SerializeElement(P + Q); libsodium rejects a non-canonical encoding of either input."""
    out = ctypes.create_string_buffer(32)
    if sodium.crypto_core_ristretto255_add(out, p, q) != 0:
        raise ValueError("invalid element")
    return out.raw


def expand_message_xmd(msg: bytes, dst: bytes, n: int) -> bytes:
    """RFC 9380 5.3.1 with SHA-512 (b_in_bytes 64, s_in_bytes 128)."""
    assert len(dst) <= 255 and n <= 255 * 64
    ell = -(-n // 64)
    dst_prime = dst + bytes([len(dst)])
    b0 = hashlib.sha512(bytes(128) + msg + n.to_bytes(2, "big") + b"\x00" + dst_prime).digest()
    b = [hashlib.sha512(b0 + b"\x01" + dst_prime).digest()]
    for i in range(2, ell + 1):
        prev_xor = bytes(x ^ y for x, y in zip(b0, b[-1]))
        b.append(hashlib.sha512(prev_xor + bytes([i]) + dst_prime).digest())
    return b"".join(b)[:n]


def context_string(mode: int) -> bytes:
    return b"OPRFV1-" + bytes([mode]) + b"-ristretto255-SHA512"


def hash_to_group(mode: int, msg: bytes) -> bytes:
    """RFC 9497 HashToGroup = hash_to_ristretto255: XMD to 64 bytes, then the RFC 9496 one-way
    map (two Elligator images added), which is what crypto_core_ristretto255_from_hash does."""
    uniform = expand_message_xmd(msg, b"HashToGroup-" + context_string(mode), 64)
    out = ctypes.create_string_buffer(32)
    assert sodium.crypto_core_ristretto255_from_hash(out, uniform) == 0
    return out.raw


def hash_to_scalar(mode: int, msg: bytes) -> int:
    """RFC 9497 HashToScalar for ristretto255: XMD to 64 bytes, little-endian, reduced mod L."""
    return reduce64(expand_message_xmd(msg, b"HashToScalar-" + context_string(mode), 64))


def lp(b: bytes) -> bytes:
    """The RFC's I2OSP(len(x), 2) || x, used for every variable item of the proof transcripts."""
    return len(b).to_bytes(2, "big") + b


def composite_scalars(mode: int, B: bytes, C: list, D: list) -> list:
    """The d_i of RFC 9497 ComputeComposites: a seed bound to the public key, then one
    HashToScalar per pair (C_i, D_i) with the index i as I2OSP(i, 2). Shared by the prover's
    and the verifier's versions, which differ only in how Z is formed."""
    assert len(C) == len(D) and 0 < len(C) < 1 << 16
    seed = hashlib.sha512(lp(B) + lp(b"Seed-" + context_string(mode))).digest()
    return [hash_to_scalar(mode, lp(seed) + i.to_bytes(2, "big") + lp(c) + lp(d) + b"Composite")
            for i, (c, d) in enumerate(zip(C, D))]


def lincomb(scalars: list, points: list) -> bytes:
    """Σ s_i·P_i, started from the first term rather than the identity: libsodium refuses an
    identity result, and a zero partial sum only happens with negligible probability."""
    acc = mul(scalars[0], points[0])
    for s, p in zip(scalars[1:], points[1:]):
        acc = add(acc, mul(s, p))
    return acc


def challenge(mode: int, B: bytes, M: bytes, Z: bytes, t2: bytes, t3: bytes) -> int:
    return hash_to_scalar(mode, lp(B) + lp(M) + lp(Z) + lp(t2) + lp(t3) + b"Challenge")


def generate_proof(mode: int, k: int, A: bytes, B: bytes, C: list, D: list, r: int) -> bytes:
    """RFC 9497 2.2.1 GenerateProof, returning c || s. The nonce r is a parameter: the RFC draws
    it with RandomScalar, its vectors give it, and the protocol derives it (proof_nonce below).
    Uses ComputeCompositesFast, the prover's version: Z = k·M rather than Σ d_i·D_i."""
    M = lincomb(composite_scalars(mode, B, C, D), C)
    Z = mul(k, M)
    t2, t3 = mul(r, A), mul(r, M)
    c = challenge(mode, B, M, Z, t2, t3)
    s = ssub(r, smul(c, k))
    return s2b(c) + s2b(s)


def verify_proof(mode: int, A: bytes, B: bytes, C: list, D: list, proof: bytes) -> bool:
    """RFC 9497 2.2.2 VerifyProof, with ComputeComposites (Z = Σ d_i·D_i: the verifier does not
    know k)."""
    assert len(proof) == 64
    c, s = (int.from_bytes(proof[i:i + 32], "little") for i in (0, 32))
    if not (0 < c < L and 0 < s < L):  # non-canonical fails; 0 is negligible, and mul() needs > 0
        return False
    ds = composite_scalars(mode, B, C, D)
    M, Z = lincomb(ds, C), lincomb(ds, D)
    t2 = add(mul(s, A), mul(c, B))
    t3 = add(mul(s, M), mul(c, Z))
    return challenge(mode, B, M, Z, t2, t3) == c


def finalize(inp: bytes, unblinded: bytes) -> bytes:
    """RFC 9497 Finalize for modes 0 and 1 (no info)."""
    return hashlib.sha512(len(inp).to_bytes(2, "big") + inp
                          + len(unblinded).to_bytes(2, "big") + unblinded + b"Finalize").digest()


# --- Step 1: validate the building blocks against RFC 9497 (modes 0 and 1) ----------------------

def validate_rfc9497() -> tuple[int, int, list]:
    suites = json.load(open(RFC_JSON))["suites"]
    vectors = elements = 0
    proofs = []  # batch size of each mode-1 vector whose proof was checked
    for suite in suites:
        mode = suite["mode"]
        if mode not in (0, 1):
            continue  # mode 2 (POPRF) needs the info-tweaked key; the protocol does not use it
        assert bytes.fromhex(suite["groupDST"]) == b"HashToGroup-" + context_string(mode)
        sk = b2s(bytes.fromhex(suite["skSm"]))
        for v in suite["vectors"]:
            # Batched vectors list one value per element, comma-separated; check each element.
            fields = {f: [bytes.fromhex(x) for x in v[f].split(",")]
                      for f in ("Input", "Blind", "BlindedElement", "EvaluationElement", "Output")}
            assert all(len(xs) == v["Batch"] for xs in fields.values())
            for i in range(v["Batch"]):
                inp, blind = fields["Input"][i], b2s(fields["Blind"][i])
                h = hash_to_group(mode, inp)
                assert mul(blind, h) == fields["BlindedElement"][i]
                assert mul(sk, fields["BlindedElement"][i]) == fields["EvaluationElement"][i]
                # Unblinding the evaluation must give sk*H(input); Output hashes that.
                unblinded = mul(inv(blind), fields["EvaluationElement"][i])
                assert unblinded == mul(sk, h)
                assert finalize(inp, unblinded) == fields["Output"][i]
                elements += 1
            if mode == 1:
                # The VOPRF server proves the evaluations of a whole batch with one proof:
                # A = G, B = pkS, C = blinded elements, D = evaluations, in order. Verifying the
                # vector's proof checks VerifyProof; regenerating it from the vector's nonce
                # (stored as "r" in the JSON: the RFC's ProofRandomScalar) checks GenerateProof
                # and ComputeCompositesFast byte for byte.
                pk = mul_base(sk)
                assert pk == bytes.fromhex(suite["pkSm"])
                C, D = fields["BlindedElement"], fields["EvaluationElement"]
                proof = bytes.fromhex(v["Proof"]["proof"])
                assert verify_proof(mode, GENERATOR, pk, C, D, proof)
                r = b2s(bytes.fromhex(v["Proof"]["r"]))
                assert generate_proof(mode, sk, GENERATOR, pk, C, D, r) == proof
                # The check must be able to fail: the same proof for other evaluations (the
                # batch swapped, or the single element doubled) is refused.
                wrong = D[::-1] if len(D) > 1 else [mul(2, D[0])]
                assert not verify_proof(mode, GENERATOR, pk, C, wrong, proof)
                proofs.append(len(C))
            vectors += 1
    return vectors, elements, proofs


# --- Protocol version 2 ---------------------------------------------------------------------

PROTOCOL_VERSION = 3  # 3 added labels; the tags and their DSTs are version 2's
OPRF_MODE = 0x01  # v2 maps keys with the VOPRF context string
COUNT_TAG_DST = b"suyuan-count-tag-v2"
PROOF_NONCE_DST = b"suyuan-proof-nonce-v2"
KEY_TYPES = ["mobile", "resident_id", "bank_card", "email", "name_birthdate", "name_mobile"]
MODES = {"count": 0, "matches": 1}


def oprf_input(key_type: str, value: str) -> bytes:
    return key_type.encode() + b"\x00" + value.encode("utf-8")


def H(key) -> bytes:
    return hash_to_group(OPRF_MODE, oprf_input(*key))


def tag16(key, k: int) -> bytes:
    """matches-mode stored tag: RFC 9497 Finalize of k*H(input), first 16 bytes."""
    return finalize(oprf_input(*key), mul(k, H(key)))[:16]


def count_tag16(point: bytes) -> bytes:
    """count-mode tag: binds only the point, since count-mode positions carry no key identity."""
    return hashlib.sha512(COUNT_TAG_DST + point).digest()[:16]


def proof_nonce(seed: bytes, seq: int) -> int:
    """The nonce of chunk seq's proof: HashToScalar-like (XMD-SHA512 to 64 bytes, little-endian,
    mod L) of the session's secret seed and the chunk number, under the protocol's own DST. A
    nonce derived this way is fresh per chunk and per session (the seed is drawn when a matches
    session starts) without an RNG draw per chunk, and is never reused for two different
    statements within a session, since seq differs."""
    assert len(seed) == 32 and 0 <= seq < 1 << 32
    r = reduce64(expand_message_xmd(seed + seq.to_bytes(4, "big"), PROOF_NONCE_DST, 64))
    assert r != 0  # probability 1/L; not a usable nonce (and mul() needs a non-zero scalar)
    return r


def clog2(x: int) -> int:
    return 0 if x <= 1 else (x - 1).bit_length()


def tag_len(n: int, m: int) -> int:
    return min(16, max(8, -(-(clog2(n) + clog2(m) + 40) // 8)))


# bincode 2 standard config (section 4.2): varints, raw u8, fixed arrays without length.
def varint(v: int) -> bytes:
    if v <= 250:
        return bytes([v])
    for marker, width in ((0xFB, 2), (0xFC, 4), (0xFD, 8)):
        if v < 1 << (8 * width):
            return bytes([marker]) + v.to_bytes(width, "little")
    raise ValueError(v)


def sections_enc(sections) -> bytes:
    return varint(len(sections)) + b"".join(varint(KEY_TYPES.index(t)) + varint(c) for t, c in sections)


def enc_start(mode, sections, labels=False):  # QuerierMessage::Start
    return (varint(0) + varint(PROTOCOL_VERSION) + varint(MODES[mode]) + sections_enc(sections)
            + bytes([1 if labels else 0]))


def enc_string(v: str) -> bytes:  # String: byte length as a varint, then UTF-8
    b = v.encode("utf-8")
    return varint(len(b)) + b


LABEL_KINDS = ["text", "month"]


def enc_offer(specs, value_counts, min_cell, totals, nonce) -> bytes:  # LabelOffer
    assert len(nonce) == 16
    return (varint(len(specs)) + b"".join(enc_string(n) + varint(LABEL_KINDS.index(k)) for n, k in specs)
            + varint(len(value_counts)) + b"".join(varint(c) for c in value_counts)
            + varint(min_cell) + bytes([1 if totals else 0]) + nonce)


def enc_accept(epoch, ell, pk, sections, offer=None):  # HolderMessage::Accept
    assert len(pk) == 32  # Element: 32 raw bytes, no length
    labels = b"\x00" if offer is None else b"\x01" + offer  # Option<LabelOffer>
    return (varint(0) + varint(PROTOCOL_VERSION) + epoch + bytes([ell]) + pk
            + sections_enc(sections) + labels)


def enc_label_values(label: int, values, totals=()) -> bytes:  # HolderMessage::LabelValues
    return (varint(3) + bytes([label]) + varint(len(values)) + b"".join(enc_string(v) for v in values)
            + varint(len(totals)) + b"".join(varint(t) for t in totals))


# --- Labels (protocol version 3, section 3.9) -------------------------------------------------

LABEL_STREAM_DST = b"suyuan-label-stream-v3"
SLOTS = 4  # values of one label a key keeps, each a 2-byte slot


def label_key(key, k: int) -> bytes:
    """matches mode: bytes 32..64 of the key's Finalize output (the tag is bytes 0..16)."""
    return finalize(oprf_input(*key), mul(k, H(key)))[32:]


def slots(values_by_label, offered_values) -> bytes:
    """Per offered label, SLOTS big-endian u16: value id + 1 (ids index the sorted values sent in
    LabelValues), 0 for an empty slot, 0xFFFF for a value too rare to name."""
    out = b""
    for vals, dictionary in zip(values_by_label, offered_values):
        ids = sorted(dictionary.index(v) + 1 for v in vals)[:SLOTS]
        out += b"".join(i.to_bytes(2, "big") for i in ids) + bytes(2 * (SLOTS - len(ids)))
    return out


def seal(plain: bytes, key: bytes, nonce: bytes) -> bytes:
    """slots XOR SHA-512(DST || label key || nonce); the same XOR opens."""
    ks = hashlib.sha512(LABEL_STREAM_DST + key + nonce).digest()
    assert len(plain) <= 64
    return bytes(x ^ y for x, y in zip(plain, ks))


def enc_tags(key_type, tags: bytes, sealed: bytes = b""):  # HolderMessage::Tags
    return (varint(1) + varint(KEY_TYPES.index(key_type)) + varint(len(tags)) + tags
            + varint(len(sealed)) + sealed)


def enc_chunk(variant, seq, elements):  # Blinded (querier 1) / Evaluated (holder 2) w/o proof
    return varint(variant) + varint(seq) + varint(len(elements)) + b"".join(elements)


def enc_evaluated(seq, elements, proof):  # HolderMessage::Evaluated
    # Option<Proof>: serde's Option is one byte 0/1, then Proof = (c, s) as two 32-byte scalars.
    opt = b"\x00" if proof is None else b"\x01" + proof
    assert proof is None or len(proof) == 64
    return enc_chunk(2, seq, elements) + opt


def run_session(mode, holder_keys, rows, k, a, epoch, r=None, seed=None):
    """Both sides of one session (all chunks fit in one, n <= 4096). Returns messages, result.
    r is the count factor (count mode), seed the proof-nonce seed (matches mode)."""
    assert (r is None) == (mode == "matches") and (seed is None) == (mode == "count")
    hk = k if mode == "matches" else smul(r, k)  # count mode: fresh per-session key rk = r*k
    # The Accept carries the epoch public key k·G in both modes; in count mode nothing is proved
    # against it (the evaluations are under r·k and sorted), but it names the epoch's key.
    pk = mul_base(k)
    # Querier: distinct values per type, sorted by UTF-8 bytes; types in declaration order.
    by_type = {}
    for row in rows:
        for t, v in row:
            by_type.setdefault(t, set()).add(v)
    q_sections = [(t, sorted(by_type[t], key=lambda v: v.encode())) for t in KEY_TYPES if t in by_type]
    stream = [(t, v) for t, vals in q_sections for v in vals]
    assert len(stream) <= 4096
    msgs = {"Start": enc_start(mode, [(t, len(vs)) for t, vs in q_sections])}
    # Holder: stored tags per queried type, sorted; counts announced in the Accept.
    def holder_tag(key):
        return tag16(key, k) if mode == "matches" else count_tag16(mul(hk, H(key)))
    h_tags = {t: sorted(holder_tag(y) for y in holder_keys if y[0] == t) for t, _ in q_sections}
    n, m = len(stream), sum(len(v) for v in h_tags.values())
    ell = tag_len(n, m)
    msgs["Accept"] = enc_accept(epoch, ell, pk, [(t, len(h_tags[t])) for t, _ in q_sections])
    msgs["Tags"] = b"".join(enc_tags(t, b"".join(x[:ell] for x in h_tags[t]))
                            for t, _ in q_sections if h_tags[t])
    blinded = [mul(a, H(x)) for x in stream]
    msgs["Blinded"] = enc_chunk(1, 0, blinded)
    evals = [mul(hk, b) for b in blinded]
    if mode == "count":  # sorted within each section so positions reveal nothing
        pos, out = 0, []
        for _, vals in q_sections:
            out += sorted(evals[pos:pos + len(vals)])
            pos += len(vals)
        evals = out
    # matches mode: the chunk's batched DLEQ proof that evals = k·blinded, element by element,
    # for the k of pk (RFC 9497 VOPRF, mode 1, A = G, B = pk), with the derived nonce of seq 0.
    proof = None
    if mode == "matches":
        proof = generate_proof(OPRF_MODE, k, GENERATOR, pk, blinded, evals, proof_nonce(seed, 0))
    msgs["Evaluated"] = enc_evaluated(0, evals, proof)
    # Querier: in matches mode, check the proof against the Accept's pk before using anything.
    if mode == "matches":
        assert verify_proof(OPRF_MODE, GENERATOR, pk, blinded, evals, proof)
    # Querier: unblind and look each tag up in its section's received l-byte tags.
    a_inv = inv(a)
    matched_keys = {t: 0 for t, _ in q_sections}
    matched = set()
    for p, e in enumerate(evals):
        t, x = stream[p]
        u = mul(a_inv, e)
        tag = finalize(oprf_input(t, x), u) if mode == "matches" else count_tag16(u)
        if tag[:ell] in {y[:ell] for y in h_tags[t]}:
            matched_keys[t] += 1
            matched.add(stream[p])
    rows_hit = [i for i, row in enumerate(rows) if any(kk in matched for kk in row)]
    return msgs, {"ell": ell, "hk": hk, "pk": pk, "proof": proof, "matched_keys": matched_keys,
                  "matched_rows": rows_hit if mode == "matches" else None, "stream": stream}


# --- Inputs (as in section 8 of version 1) ----------------------------------------------------

K = b2s(bytes.fromhex("5ebcea5ee37023ccb9fc2d2019f9d7737be85591ae8652ffa9ef0f4d37063b0e"))
A = b2s(bytes.fromhex("64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706"))
EPOCH = bytes(range(16))
KEYS = [("mobile", "13800138000"), ("resident_id", "11010519491231002X"),
        ("email", "a@b.cn"), ("name_birthdate", "张慧|19491231")]
SECOND_MOBILE = ("mobile", "13912345678")
# The OPRF inputs are unchanged from version 1 (section 8.1 of version 1).
V1_INPUTS = ["6d6f62696c65003133383030313338303030",
             "7265736964656e745f696400313130313035313934393132333130303258",
             "656d61696c006140622e636e",
             "6e616d655f62697274686461746500e5bca0e685a77c3139343931323331"]
HOLDER = [("mobile", "13800138000"), SECOND_MOBILE]
ROWS = [[("mobile", "13800138000")], [("email", "a@b.cn")]]
R = reduce64(hashlib.sha512(b"suyuan golden count factor").digest())
PROOF_SEED = hashlib.sha256(b"suyuan golden proof seed").digest()  # 32 bytes, as the RNG's draw


def hx(b: bytes) -> str:
    return b.hex()


def show_session(msgs, res):
    """Print the messages in the layout of section 8.2: structure first, then the full hex."""
    ell = res["ell"]
    # The byte slicing below assumes this section's shapes: two sections with small counts,
    # one non-empty tag section, fewer than 251 tag bytes and elements (one-byte varints).
    assert len(msgs["Accept"]) == 57 and msgs["Tags"][2] == len(msgs["Tags"]) - 4 < 251
    st, acc = msgs["Start"], msgs["Accept"]
    print(f"querier → holder  Start     {hx(st)}")
    print(f"holder → querier  Accept    {acc[:1].hex()} {acc[1:2].hex()} {acc[2:18].hex()} "
          f"{acc[18:19].hex()} {acc[19:51].hex()} {acc[51:52].hex()} {acc[52:54].hex()} "
          f"{acc[54:56].hex()} {acc[56:57].hex()}")
    print(f"                            = {hx(acc)}")
    tg = msgs["Tags"]
    tags = " ".join(tg[3 + i:3 + i + ell].hex() for i in range(0, tg[2], ell))
    print(f"holder → querier  Tags      {tg[:1].hex()} {tg[1:2].hex()} {tg[2:3].hex()} {tags} "
          f"{tg[-1:].hex()}")
    print(f"                            = {hx(tg)}")
    for name, arrow in (("Blinded", "querier → holder"), ("Evaluated", "holder → querier")):
        m = msgs[name]
        end = 3 + 32 * m[2]  # after the elements; Evaluated continues with its Option<Proof>
        tail = ""
        if name == "Evaluated":
            tail = " 01 <c> <s>" if res["proof"] else " 00 (no proof)"
            assert len(m) == end + (65 if res["proof"] else 1)
        else:
            assert len(m) == end
        print(f"{arrow}  {name:<9} {m[:1].hex()} {m[1:2].hex()} {m[2:3].hex()} "
              f"<{m[2]} elements>{tail}")
        print(f"                            = {m[:3].hex()}{m[3:35].hex()}")
        for i in range(35, end, 32):
            print(f"                                    {m[i:i + 32].hex()}")
        if len(m) > end:  # the Option byte, then c and s if present
            print(f"                                    {m[end:end + 1].hex()}")
            for i in range(end + 1, len(m), 32):
                print(f"                                    {m[i:i + 32].hex()}")


def main():
    vectors, elements, proofs = validate_rfc9497()
    print(f"RFC 9497 mode 0 and 1: {vectors} vectors reproduced")
    print(f"  ({elements} elements: BlindedElement, EvaluationElement, unblinding, Output; the "
          f"mode-1 batch of 2 checked element by element; mode 2 skipped)")
    print(f"  ({len(proofs)} mode-1 proofs, batch sizes {proofs}: each verifies with VerifyProof, "
          f"GenerateProof with the vector's ProofRandomScalar reproduces its bytes, and it is "
          f"refused for altered evaluations)")
    print()

    print("### 8.1 Keys, blinds and tags (version 3; tags unchanged since version 2)")
    print(f"k    (holder key)     {hx(s2b(K))}")
    print(f"a    (querier blind)  {hx(s2b(A))}")
    print(f"a⁻¹ mod L             {hx(s2b(inv(A)))}")
    for key, v1 in zip(KEYS, V1_INPUTS):
        inp = oprf_input(*key)
        assert inp.hex() == v1
        h = H(key)
        ah, kh = mul(A, h), mul(K, h)
        kah = mul(K, ah)
        assert mul(inv(A), kah) == kh  # unblinding commutes: a^-1 * k * a * H = k * H
        print(f"\n{key[0]} {key[1]}")
        for label, val in (("input", inp), ("H", h), ("aH", ah), ("kaH", kah), ("kH", kh),
                           ("tag16", tag16(key, K))):
            print(f" {label:<5} {hx(val)}")
    print(f"\n{SECOND_MOBILE[0]} {SECOND_MOBILE[1]}")
    print(f" tag16 {hx(tag16(SECOND_MOBILE, K))}")

    print("\n### 8.2 A complete session (matches mode)")
    msgs, res = run_session("matches", HOLDER, ROWS, K, A, EPOCH, seed=PROOF_SEED)
    pk, proof = res["pk"], res["proof"]
    r0 = proof_nonce(PROOF_SEED, 0)
    for label, val in (("pk   = k·G (epoch public key, in the Accept)", pk),
                       ("seed = SHA-256(\"suyuan golden proof seed\")", PROOF_SEED),
                       ("r₀   = XMD(seed || I2OSP(0, 4), \"" + PROOF_NONCE_DST.decode()
                        + "\", 64) mod L", s2b(r0))):
        print(f"{label:<68} {hx(val)}")
    print("proof of chunk 0 (A = G, B = pk, C = Blinded elements, D = Evaluated elements, "
          "nonce r₀):")
    print(f" c   {hx(proof[:32])}")
    print(f" s   {hx(proof[32:])}")
    print(f"epoch {hx(EPOCH)}, n = 2, m = 2, ℓ = {res['ell']}")
    show_session(msgs, res)
    # The querier's check (done in run_session) once more, from the message bytes alone.
    ev = msgs["Evaluated"]
    assert verify_proof(OPRF_MODE, GENERATOR, msgs["Accept"][19:51],
                        [msgs["Blinded"][3 + 32 * i:35 + 32 * i] for i in range(2)],
                        [ev[3 + 32 * i:35 + 32 * i] for i in range(2)], ev[68:132])
    print("proof verified (VerifyProof, A = G, B = the Accept's pk)")
    assert res["matched_keys"] == {"mobile": 1, "email": 0} and res["matched_rows"] == [0]
    print(f"result: matched_keys = {res['matched_keys']}, matched_rows = {res['matched_rows']}")

    print("\n### 8.3 A complete session (count mode)")
    # No proof-nonce seed is drawn in count mode, so the count factor is still the RNG's first
    # draw; the Accept carries the same epoch pk as in 8.2 and the chunk ends in 00 (no proof).
    assert 0 < R < L  # canonical, non-zero: accepted by RandomScalar on its first draw
    print(f"r   = SHA-512(\"suyuan golden count factor\") mod L   {hx(s2b(R))}")
    msgs, res = run_session("count", HOLDER, ROWS, K, A, EPOCH, r=R)
    rk = res["hk"]
    print(f"rk  = r·k mod L                                     {hx(s2b(rk))}")
    print("holder count tags (16 bytes, sorted):")
    for key, t in sorted(((y, count_tag16(mul(rk, H(y)))) for y in HOLDER), key=lambda p: p[1]):
        print(f" {t.hex()}   ({key[0]} {key[1]})")
    print(f"epoch {hx(EPOCH)}, n = 2, m = 2, ℓ = {res['ell']}")
    show_session(msgs, res)
    print("querier unblinds (a⁻¹·rk·a·H(x) = rk·H(x)):")
    for key in res["stream"]:
        u = mul(rk, H(key))
        print(f" {key[0]} {key[1]}\n  rkH      {hx(u)}\n  counttag {hx(count_tag16(u))}")
    assert res["matched_keys"] == {"mobile": 1, "email": 0}
    print(f"result: matched_keys = {res['matched_keys']} (count mode: no matched_rows)")
    labelled_session()


LABEL_NONCE = hashlib.sha256(b"suyuan golden label nonce").digest()[:16]
BRANCHES = {("mobile", "13800138000"): ["乌鲁木齐分行"], ("mobile", "13912345678"): ["北京分行"]}


def labelled_session():
    """Section 8.4: the session of 8.2 with labels asked and the label `branch` offered."""
    print("\n### 8.4 A session with labels (matches mode)")
    dictionary = sorted({v for vs in BRANCHES.values() for v in vs}, key=lambda v: v.encode())
    ell = 8
    pk = mul_base(K)
    start = enc_start("matches", [("mobile", 1), ("email", 1)], labels=True)
    # share_label_totals on: per value, per holder section (mobile, email), its keys.
    offer = enc_offer([("branch", "text")], [len(dictionary)], 1, True, LABEL_NONCE)
    accept = enc_accept(EPOCH, ell, pk, [("mobile", 2), ("email", 0)], offer)
    totals = [n for v in dictionary for n in (sum(v in BRANCHES[y] for y in HOLDER), 0)]
    assert totals == [1, 0, 1, 0]
    values = enc_label_values(0, dictionary, totals)
    held = sorted(HOLDER, key=lambda y: tag16(y, K))
    sealed = b"".join(seal(slots([BRANCHES[y]], [dictionary]), label_key(y, K), LABEL_NONCE)
                      for y in held)
    tags = enc_tags("mobile", b"".join(tag16(y, K)[:ell] for y in held), sealed)
    print(f"nonce = SHA-256(\"suyuan golden label nonce\")[..16]  {hx(LABEL_NONCE)}")
    print("(the holder draws the proof-nonce seed of 8.2 first, then this nonce)")
    for y in held:
        plain = slots([BRANCHES[y]], [dictionary])
        print(f"{y[0]} {y[1]} ({BRANCHES[y][0]})\n label key {hx(label_key(y, K))}\n"
              f" slots     {hx(plain)}\n sealed    {hx(seal(plain, label_key(y, K), LABEL_NONCE))}")
    print(f"querier → holder  Start        {hx(start)}")
    print(f"holder → querier  Accept       {hx(accept)}")
    print(f"holder → querier  LabelValues  {hx(values)}")
    print(f"holder → querier  Tags         {hx(tags)}")
    print("(Blinded and Evaluated as in 8.2)")
    # The querier opens the sealed labels of its matched key with its own Finalize output.
    mine = ("mobile", "13800138000")
    at = held.index(mine)
    w = 2 * SLOTS
    opened = seal(sealed[at * w:(at + 1) * w], label_key(mine, K), LABEL_NONCE)
    ids = [int.from_bytes(opened[i:i + 2], "big") for i in range(0, w, 2)]
    assert ids == [dictionary.index("乌鲁木齐分行") + 1, 0, 0, 0]
    print(f"querier opens row 1's key: slots {hx(opened)} → branch {dictionary[ids[0] - 1]}")


if __name__ == "__main__":
    main()

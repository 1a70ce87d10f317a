//! Every ristretto255-SHA512 vector of RFC 9497 Appendix A.1 (modes 0 and 1), byte for byte.
//! The RFC's blinds and proof nonces are replayed through an injected RNG.

use std::convert::Infallible;

use crate::oprf::{
    Blind, Element, Mode, OprfClient, OprfServer, Proof, PublicKey, VoprfClient, VoprfServer,
    derive_key_pair,
};
use rand_core::{TryCryptoRng, TryRng};
use serde::Deserialize;

#[derive(Deserialize)]
struct File {
    provenance: serde_json::Value,
    suites: Vec<Suite>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Suite {
    identifier: String,
    mode: u8,
    seed: String,
    key_info: String,
    sk_sm: String,
    pk_sm: Option<String>,
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Vector {
    batch: usize,
    blind: String,
    blinded_element: String,
    evaluation_element: String,
    input: String,
    output: String,
    proof: Option<ProofVector>,
}

#[derive(Deserialize)]
struct ProofVector {
    proof: String,
    r: String,
}

/// Replays fixed bytes, then fails loudly: a test that draws more than the RFC gave is wrong.
struct ReplayRng(Vec<u8>);

impl TryRng for ReplayRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        assert!(dst.len() <= self.0.len(), "test RNG exhausted");
        let rest = self.0.split_off(dst.len());
        dst.copy_from_slice(&self.0);
        self.0 = rest;
        Ok(())
    }
}
impl TryCryptoRng for ReplayRng {}

fn list(s: &str) -> Vec<Vec<u8>> {
    s.split(',').map(|x| hex::decode(x).unwrap()).collect()
}

fn elements(s: &str) -> Vec<Element> {
    list(s)
        .into_iter()
        .map(|b| Element(b.try_into().unwrap()))
        .collect()
}

fn load() -> Vec<Suite> {
    let text = include_str!("../../../tests/vectors/rfc9497-ristretto255-sha512.json");
    let file: File = serde_json::from_str(text).unwrap();
    assert!(
        file.provenance["standard"]
            .as_str()
            .unwrap()
            .contains("RFC 9497")
    );
    file.suites
}

fn suite(mode: u8) -> Suite {
    let s = load().into_iter().find(|s| s.mode == mode).unwrap();
    assert_eq!(s.identifier, "ristretto255-SHA512");
    s
}

fn mode_of(m: u8) -> Mode {
    match m {
        0 => Mode::Oprf,
        1 => Mode::Voprf,
        _ => unreachable!(),
    }
}

#[test]
fn derive_key_pair_matches_rfc() {
    for m in [0, 1] {
        let s = suite(m);
        let seed: [u8; 32] = hex::decode(&s.seed).unwrap().try_into().unwrap();
        let info = hex::decode(&s.key_info).unwrap();
        let (sk, pk) = derive_key_pair(mode_of(m), &seed, &info).unwrap();
        assert_eq!(hex::encode(*sk.to_bytes()), s.sk_sm, "mode {m}");
        if let Some(pk_sm) = &s.pk_sm {
            assert_eq!(hex::encode(pk.to_element().0), *pk_sm, "mode {m}");
        }
    }
}

#[test]
fn oprf_mode0_vectors() {
    let s = suite(0);
    let seed: [u8; 32] = hex::decode(&s.seed).unwrap().try_into().unwrap();
    let (sk, _) = derive_key_pair(Mode::Oprf, &seed, &hex::decode(&s.key_info).unwrap()).unwrap();
    let server = OprfServer::new(sk);
    // Pinned: a vector file that lost entries would otherwise pass with fewer checks.
    assert_eq!(s.vectors.len(), 2, "RFC 9497 A.1.1 has two mode-0 vectors");
    for v in &s.vectors {
        let inputs = list(&v.input);
        let inputs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
        assert_eq!(inputs.len(), v.batch);
        let mut rng = ReplayRng(list(&v.blind).concat());
        let (blinds, blinded) = OprfClient::blind_batch(&mut rng, &inputs).unwrap();
        assert!(rng.0.is_empty());
        assert_eq!(blinded, elements(&v.blinded_element));
        let evaluated = server.blind_evaluate_batch(&blinded).unwrap();
        assert_eq!(evaluated, elements(&v.evaluation_element));
        let out = OprfClient::finalize_batch(&inputs, &blinds, &evaluated).unwrap();
        let expected = list(&v.output);
        assert_eq!(out.iter().map(|o| o.to_vec()).collect::<Vec<_>>(), expected);

        // The single-element API gives the same bytes.
        let mut rng = ReplayRng(list(&v.blind).concat());
        let (blind, b) = OprfClient::blind(&mut rng, inputs[0]).unwrap();
        assert_eq!(b, blinded[0]);
        let e = server.blind_evaluate(&b).unwrap();
        assert_eq!(e, evaluated[0]);
        assert_eq!(
            OprfClient::finalize(inputs[0], &blind, &e)
                .unwrap()
                .to_vec(),
            expected[0]
        );

        // Blinds given instead of drawn, and the server's own Evaluate, give the same bytes.
        let given: Vec<Blind> = list(&v.blind)
            .iter()
            .map(|b| Blind::from_bytes(&b.as_slice().try_into().unwrap()).unwrap())
            .collect();
        assert_eq!(
            OprfClient::blind_batch_with(&inputs, &given).unwrap(),
            blinded
        );
        assert_eq!(given[0].to_bytes().to_vec(), list(&v.blind)[0]);
        for (input, out) in inputs.iter().zip(&expected) {
            assert_eq!(server.evaluate(input).unwrap().to_vec(), *out);
        }
    }
}

#[test]
fn voprf_mode1_vectors_including_batches() {
    let s = suite(1);
    let seed: [u8; 32] = hex::decode(&s.seed).unwrap().try_into().unwrap();
    let (sk, _) = derive_key_pair(Mode::Voprf, &seed, &hex::decode(&s.key_info).unwrap()).unwrap();
    let server = VoprfServer::new(sk);
    let pk_bytes: [u8; 32] = hex::decode(s.pk_sm.as_ref().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let pk = PublicKey::from_element(&Element(pk_bytes)).unwrap();
    assert_eq!(server.public_key(), pk);
    let client = VoprfClient::new(pk);
    let batches: Vec<usize> = s.vectors.iter().map(|v| v.batch).collect();
    assert_eq!(
        batches,
        [1, 1, 2],
        "RFC 9497 A.1.2: two single vectors and a batch of two"
    );
    for v in &s.vectors {
        let inputs = list(&v.input);
        let inputs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
        let mut rng = ReplayRng(list(&v.blind).concat());
        let (blinds, blinded) = VoprfClient::blind_batch(&mut rng, &inputs).unwrap();
        assert_eq!(blinded, elements(&v.blinded_element));

        let pv = v.proof.as_ref().unwrap();
        let mut prover_rng = ReplayRng(hex::decode(&pv.r).unwrap());
        let (evaluated, proof) = server
            .blind_evaluate_batch(&mut prover_rng, &blinded)
            .unwrap();
        assert_eq!(evaluated, elements(&v.evaluation_element));
        assert_eq!(hex::encode(proof.to_bytes()), pv.proof);
        let nonce: [u8; 32] = hex::decode(&pv.r).unwrap().try_into().unwrap();
        let (again, proof_again) = server
            .blind_evaluate_batch_with_nonce(&blinded, &nonce)
            .unwrap();
        assert_eq!((again, proof_again), (evaluated.clone(), proof));
        let given: Vec<Blind> = list(&v.blind)
            .iter()
            .map(|b| Blind::from_bytes(&b.as_slice().try_into().unwrap()).unwrap())
            .collect();
        assert_eq!(
            VoprfClient::blind_batch_with(&inputs, &given).unwrap(),
            blinded
        );
        for (input, out) in inputs.iter().zip(list(&v.output)) {
            assert_eq!(server.evaluate(input).unwrap().to_vec(), out);
        }

        let out = client
            .finalize_batch(&inputs, &blinds, &blinded, &evaluated, &proof)
            .unwrap();
        assert_eq!(
            out.iter().map(|o| o.to_vec()).collect::<Vec<_>>(),
            list(&v.output)
        );

        // A proof for other evaluations, or a tampered proof, is refused.
        let mut bad = proof.to_bytes();
        bad[5] ^= 1;
        let err = client
            .finalize_batch(
                &inputs,
                &blinds,
                &blinded,
                &evaluated,
                &Proof::from_bytes(&bad),
            )
            .unwrap_err();
        assert_eq!(err.to_string(), "verification failed");
        let mut swapped = evaluated.clone();
        swapped.reverse();
        if swapped != evaluated {
            assert!(
                client
                    .finalize_batch(&inputs, &blinds, &blinded, &swapped, &proof)
                    .is_err()
            );
        }
    }
}

#[test]
fn blinds_and_nonces_must_be_canonical_non_zero_scalars() {
    assert_eq!(
        Blind::from_bytes(&[0u8; 32]).unwrap_err(),
        crate::oprf::OprfError::InvalidScalar
    );
    // The group order ℓ itself is not a canonical encoding.
    let ell =
        hex::decode("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010").unwrap();
    let ell: [u8; 32] = ell.try_into().unwrap();
    assert!(Blind::from_bytes(&ell).is_err());
    let s = suite(1);
    let seed: [u8; 32] = hex::decode(&s.seed).unwrap().try_into().unwrap();
    let (sk, _) = derive_key_pair(Mode::Voprf, &seed, &hex::decode(&s.key_info).unwrap()).unwrap();
    let blinded = elements(&s.vectors[0].blinded_element);
    assert_eq!(
        VoprfServer::new(sk)
            .blind_evaluate_batch_with_nonce(&blinded, &ell)
            .unwrap_err(),
        crate::oprf::OprfError::InvalidScalar
    );
}

/// Every vector's `BlindEvaluate` through dalek's path and through the eight-lane one in turn
/// (issue 15): the same bytes, the RFC's. The switch is process-wide, so the other tests may
/// run on either path meanwhile; both give the same bytes, which is the point.
#[test]
fn both_curve_paths_evaluate_every_vector_byte_for_byte() {
    for m in [0, 1] {
        let s = suite(m);
        let seed: [u8; 32] = hex::decode(&s.seed).unwrap().try_into().unwrap();
        let key_info = hex::decode(&s.key_info).unwrap();
        let (sk, _) = derive_key_pair(mode_of(m), &seed, &key_info).unwrap();
        let server = OprfServer::new(sk);
        for v in &s.vectors {
            for eight_lanes in [false, true] {
                crate::oprf::set_dalek_only(!eight_lanes);
                let evaluated = server
                    .blind_evaluate_batch(&elements(&v.blinded_element))
                    .unwrap();
                assert_eq!(
                    evaluated,
                    elements(&v.evaluation_element),
                    "mode {m}, eight lanes {eight_lanes}"
                );
            }
        }
    }
    crate::oprf::set_dalek_only(false);
}

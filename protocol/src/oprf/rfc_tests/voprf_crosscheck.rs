//! Cross-check against the independent `voprf` crate (0.5) on random keys and inputs.

use crate::oprf::{Mode, OprfClient, OprfServer, SecretKey, VoprfClient, VoprfServer};
use proptest::prelude::*;
use rand::SeedableRng;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn oprf_outputs_agree_with_voprf_crate(
        seed in any::<[u8; 32]>(),
        inputs in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..80), 1..6),
    ) {
        let mut rng = rand::rngs::StdRng::from_seed(seed);
        let sk = SecretKey::random(&mut rng);
        let theirs = voprf::OprfServer::<voprf::Ristretto255>::new_with_key(&*sk.to_bytes()).unwrap();
        let ours = OprfServer::new(SecretKey::from_bytes(&sk.to_bytes()).unwrap());
        let refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
        let (blinds, blinded) = OprfClient::blind_batch(&mut rng, &refs).unwrap();
        let evaluated = ours.blind_evaluate_batch(&blinded).unwrap();
        let out = OprfClient::finalize_batch(&refs, &blinds, &evaluated).unwrap();
        for (input, o) in refs.iter().zip(&out) {
            let t = theirs.evaluate(input).unwrap();
            prop_assert_eq!(&t[..], &o[..]);
        }

        // Their client against our server: same output again.
        let mut rng08 = <rand08::rngs::StdRng as rand08::SeedableRng>::from_seed(seed);
        let blind = voprf::OprfClient::<voprf::Ristretto255>::blind(refs[0], &mut rng08).unwrap();
        let msg = blind.message.serialize();
        let ev = ours
            .blind_evaluate(&crate::oprf::Element(msg[..].try_into().unwrap()))
            .unwrap();
        let ev = voprf::EvaluationElement::<voprf::Ristretto255>::deserialize(&ev.0).unwrap();
        let theirs_out = blind.state.finalize(refs[0], &ev).unwrap();
        prop_assert_eq!(&theirs_out[..], &out[0][..]);
    }

    #[test]
    fn voprf_outputs_agree_with_voprf_crate(
        seed in any::<[u8; 32]>(),
        inputs in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..80), 1..6),
    ) {
        let mut rng = rand::rngs::StdRng::from_seed(seed);
        let sk = SecretKey::random(&mut rng);
        let theirs = voprf::VoprfServer::<voprf::Ristretto255>::new_with_key(&*sk.to_bytes()).unwrap();
        let server = VoprfServer::new(sk);
        let client = VoprfClient::new(server.public_key());
        let refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
        let (blinds, blinded) = VoprfClient::blind_batch(&mut rng, &refs).unwrap();
        let (evaluated, proof) = server.blind_evaluate_batch(&mut rng, &blinded).unwrap();
        let out = client.finalize_batch(&refs, &blinds, &blinded, &evaluated, &proof).unwrap();
        for (input, o) in refs.iter().zip(&out) {
            let t = theirs.evaluate(input).unwrap();
            prop_assert_eq!(&t[..], &o[..]);
        }
        prop_assert_eq!(Mode::Voprf.id(), 1);
    }
}

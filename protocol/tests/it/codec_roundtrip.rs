//! Every message type survives encode/decode unchanged, and no byte string makes decode panic.

use proptest::prelude::*;
use suyuan_protocol::codec::{self, DecodeError, MAX_FRAME_LEN};
use suyuan_protocol::ident::KeyType;
use suyuan_protocol::oprf::{Element, Proof};
use suyuan_protocol::psi::{
    BlindedChunk, EpochId, EvaluatedChunk, HolderMessage, QuerierMessage, QueryAccept, QueryMode,
    QueryStart, Section, TagChunk,
};

fn key_type() -> impl Strategy<Value = KeyType> {
    prop::sample::select(KeyType::ALL.to_vec())
}

fn mode() -> impl Strategy<Value = QueryMode> {
    prop_oneof![Just(QueryMode::Count), Just(QueryMode::Matches)]
}

fn sections() -> impl Strategy<Value = Vec<Section>> {
    prop::collection::vec(
        (key_type(), any::<u64>()).prop_map(|(key_type, count)| Section { key_type, count }),
        0..8,
    )
}

fn elements() -> impl Strategy<Value = Vec<Element>> {
    prop::collection::vec(any::<[u8; 32]>().prop_map(Element), 0..64)
}

fn querier_message() -> impl Strategy<Value = QuerierMessage> {
    prop_oneof![
        (any::<u16>(), mode(), sections()).prop_map(|(version, mode, sections)| {
            QuerierMessage::Start(QueryStart {
                version,
                mode,
                sections,
                labels: false,
            })
        }),
        (any::<u32>(), elements())
            .prop_map(|(seq, elements)| QuerierMessage::Blinded(BlindedChunk { seq, elements })),
    ]
}

fn holder_message() -> impl Strategy<Value = HolderMessage> {
    prop_oneof![
        (
            any::<u16>(),
            any::<[u8; 16]>(),
            any::<u8>(),
            any::<[u8; 32]>(),
            sections()
        )
            .prop_map(|(version, epoch, tag_len, pk, holder_sections)| {
                HolderMessage::Accept(QueryAccept {
                    version,
                    epoch: EpochId(epoch),
                    tag_len,
                    public_key: Element(pk),
                    holder_sections,
                    labels: None,
                })
            }),
        (key_type(), prop::collection::vec(any::<u8>(), 0..300)).prop_map(|(key_type, tags)| {
            HolderMessage::Tags(TagChunk {
                key_type,
                tags,
                labels: Vec::new(),
            })
        }),
        (
            any::<u32>(),
            elements(),
            prop::option::of((any::<[u8; 32]>(), any::<[u8; 32]>()))
        )
            .prop_map(
                |(seq, elements, proof)| HolderMessage::Evaluated(EvaluatedChunk {
                    seq,
                    elements,
                    proof: proof.map(|(c, s)| Proof { c, s }),
                })
            ),
    ]
}

proptest! {
    #[test]
    fn querier_messages_round_trip(m in querier_message()) {
        let bytes = codec::encode(&m).unwrap();
        prop_assert_eq!(codec::decode::<QuerierMessage>(&bytes).unwrap(), m);
    }

    #[test]
    fn holder_messages_round_trip(m in holder_message()) {
        let bytes = codec::encode(&m).unwrap();
        prop_assert_eq!(codec::decode::<HolderMessage>(&bytes).unwrap(), m);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = codec::decode::<QuerierMessage>(&bytes);
        let _ = codec::decode::<HolderMessage>(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(m in holder_message(), pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = codec::encode(&m).unwrap();
        if !bytes.is_empty() {
            let i = pos.index(bytes.len());
            bytes[i] = byte;
        }
        let _ = codec::decode::<HolderMessage>(&bytes);
        let _ = codec::decode::<QuerierMessage>(&bytes);
    }
}

#[test]
fn non_minimal_encodings_are_refused() {
    // Blinded { seq: 1, elements: [] } with seq written as 0xfb 0x01 0x00 (u16 form of 1).
    assert_eq!(
        codec::decode::<QuerierMessage>(&[1, 1, 0]).unwrap(),
        QuerierMessage::Blinded(BlindedChunk {
            seq: 1,
            elements: vec![]
        })
    );
    assert_eq!(
        codec::decode::<QuerierMessage>(&[1, 0xfb, 1, 0, 0]),
        Err(DecodeError::NonCanonical)
    );
}

#[test]
fn trailing_bytes_are_refused() {
    let m = QuerierMessage::Blinded(BlindedChunk {
        seq: 1,
        elements: vec![Element([7; 32])],
    });
    let mut bytes = codec::encode(&m).unwrap();
    bytes.push(0);
    assert_eq!(
        codec::decode::<QuerierMessage>(&bytes),
        Err(DecodeError::Trailing(1))
    );
}

#[test]
fn oversize_frames_and_lying_lengths_are_refused() {
    let big = vec![0u8; MAX_FRAME_LEN + 1];
    assert_eq!(
        codec::decode::<QuerierMessage>(&big),
        Err(DecodeError::TooLarge {
            len: MAX_FRAME_LEN + 1,
            max: MAX_FRAME_LEN
        })
    );
    // Variant 1 (Blinded), seq 0, then a claimed length of 2^60 elements (0xfd: a u64
    // follows): refused before allocating.
    let mut lying = vec![1u8, 0u8, 0xfd];
    lying.extend_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(matches!(
        codec::decode::<QuerierMessage>(&lying),
        Err(DecodeError::Malformed(_))
    ));
    // An unknown key type code in a section.
    let start = QuerierMessage::Start(QueryStart {
        version: 1,
        mode: QueryMode::Count,
        sections: vec![Section {
            key_type: KeyType::Email,
            count: 1,
        }],
        labels: false,
    });
    let mut bytes = codec::encode(&start).unwrap();
    let kt = bytes.len() - 3; // [.., key_type, count=1, labels=0]
    bytes[kt] = 200;
    assert!(matches!(
        codec::decode::<QuerierMessage>(&bytes),
        Err(DecodeError::Malformed(_))
    ));
}

/// The second worked example of docs/protocol.md §4.3: wide varints.
#[test]
fn the_worked_example_with_large_counts_encodes_as_written() {
    let section = |key_type, count| Section { key_type, count };
    let start = QuerierMessage::Start(QueryStart {
        version: suyuan_protocol::psi::PROTOCOL_VERSION,
        mode: QueryMode::Count,
        sections: vec![
            section(KeyType::Mobile, 300),
            section(KeyType::ResidentId, 70_000),
            section(KeyType::Email, 5_000_000_000),
        ],
        labels: false,
    });
    assert_eq!(
        hex::encode(codec::encode(&start).unwrap()),
        "0003000300fb2c0101fc7011010003fd00f2052a0100000000"
    );
}

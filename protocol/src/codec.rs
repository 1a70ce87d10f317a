//! The one place that knows the wire codec (serde + bincode 2, varint integers), so it can be
//! swapped. Every decode is bounded by [`MAX_FRAME_LEN`], must consume the whole frame, and
//! must be the message's one canonical encoding.

use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

/// Hard limit on one encoded message. A full chunk of 4096 elements is 131,081 bytes.
pub const MAX_FRAME_LEN: usize = 1 << 20;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FRAME_LEN>()
}

/// Why bytes from a peer or a file could not be read as a message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame is longer than [`MAX_FRAME_LEN`].
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Length of the offending frame.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not a valid encoding of the expected message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A valid message followed by bytes that belong to nothing.
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
    /// A valid message in a non-minimal encoding (e.g. an over-long varint). Each message has
    /// exactly one encoding, so what is logged or hashed is what was meant.
    #[error("non-canonical encoding")]
    NonCanonical,
}

/// Why a message could not be encoded (only a message over the frame limit).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The message would exceed [`MAX_FRAME_LEN`].
    #[error("message exceeds the frame limit of {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
}

/// Encodes a message into one frame body.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, EncodeError> {
    let bytes = bincode::serde::encode_to_vec(msg, config())
        .map_err(|_| EncodeError::TooLarge { max: MAX_FRAME_LEN })?;
    if bytes.len() > MAX_FRAME_LEN {
        return Err(EncodeError::TooLarge { max: MAX_FRAME_LEN });
    }
    Ok(bytes)
}

/// Decodes one frame body; rejects oversize frames, malformed bytes and trailing bytes.
pub fn decode<T: DeserializeOwned + Serialize>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() > MAX_FRAME_LEN {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: MAX_FRAME_LEN,
        });
    }
    let (msg, read) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if read != bytes.len() {
        return Err(DecodeError::Trailing(bytes.len() - read));
    }
    // Re-encoding costs a copy; the curve work on every chunk dwarfs it.
    match encode(&msg) {
        Ok(again) if again == bytes => Ok(msg),
        _ => Err(DecodeError::NonCanonical),
    }
}

//! Parallel batch arithmetic. Work is split into chunks so that one batch inversion serves each
//! chunk (inside `double_and_compress_batch`), and chunks run on rayon's pool.

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use rayon::prelude::*;
use zeroize::Zeroizing;

use super::group::{decode_element, expand_message_xmd_64, hash_to_group};
use super::{ELEMENT_LEN, Mode};

/// Whether the eight-lane IFMA path ([`crate::lanes8`]) evaluates received elements on this
/// CPU: about twice dalek's speed per element where it runs (docs/benchmarks.md).
pub(super) fn eight_lanes() -> bool {
    #[cfg(target_arch = "x86_64")]
    return crate::lanes8::in_use();
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// Decoded points kept for a proof over the same elements (a multiscalar sum), so that they
/// are decoded once: in the eight lanes where the CPU runs them, else dalek's.
pub(crate) enum Kept {
    /// dalek's points, in order.
    Dalek(Vec<RistrettoPoint>),
    /// Parts in order, every part but the last a multiple of eight long.
    #[cfg(target_arch = "x86_64")]
    Lanes(Vec<crate::lanes8::Decoded>),
}

impl Kept {
    /// None kept.
    pub(crate) fn empty() -> Kept {
        Kept::Dalek(Vec::new())
    }

    /// How many points.
    pub(crate) fn len(&self) -> usize {
        match self {
            Kept::Dalek(p) => p.len(),
            #[cfg(target_arch = "x86_64")]
            Kept::Lanes(parts) => parts.iter().map(|p| p.len()).sum(),
        }
    }

    /// Chunks' kept points, in order, as one; all of one kind (each caller picks the path once).
    pub(crate) fn concat(parts: Vec<Kept>) -> Kept {
        let mut dalek = Vec::new();
        #[cfg(target_arch = "x86_64")]
        let mut lanes = Vec::new();
        for part in parts {
            match part {
                Kept::Dalek(p) => dalek.extend(p),
                #[cfg(target_arch = "x86_64")]
                Kept::Lanes(p) => lanes.extend(p),
            }
        }
        #[cfg(target_arch = "x86_64")]
        if !lanes.is_empty() {
            return Kept::Lanes(lanes);
        }
        Kept::Dalek(dalek)
    }

    /// `Σ wᵢ·Pᵢ` (variable time: for public points and weights).
    pub(crate) fn multiscalar(&self, weights: &[Scalar]) -> Option<RistrettoPoint> {
        match self {
            Kept::Dalek(points) => Some(multiscalar_dalek(weights, points)),
            #[cfg(target_arch = "x86_64")]
            Kept::Lanes(parts) => {
                let parts: Vec<&crate::lanes8::Decoded> = parts.iter().collect();
                let sum = crate::lanes8::multiscalar_compressed(weights, &parts);
                curve25519_dalek::ristretto::CompressedRistretto(sum).decompress()
            }
        }
    }
}

/// `Σ wᵢ·Pᵢ` with dalek, the two halves of a large sum on two threads.
fn multiscalar_dalek(weights: &[Scalar], points: &[RistrettoPoint]) -> RistrettoPoint {
    use curve25519_dalek::traits::VartimeMultiscalarMul;
    if points.len() < 1024 {
        return RistrettoPoint::vartime_multiscalar_mul(weights, points);
    }
    let mid = points.len() / 2;
    let (a, b) = rayon::join(
        || RistrettoPoint::vartime_multiscalar_mul(&weights[..mid], &points[..mid]),
        || RistrettoPoint::vartime_multiscalar_mul(&weights[mid..], &points[mid..]),
    );
    a + b
}

/// `DeserializeElement` of every element, kept for a multiscalar sum, in parallel; the index of
/// the first invalid one on failure.
pub(crate) fn decode_kept(elements: &[[u8; ELEMENT_LEN]]) -> Result<Kept, usize> {
    #[cfg(target_arch = "x86_64")]
    if eight_lanes() {
        let parts: Vec<Result<crate::lanes8::Decoded, usize>> = elements
            .par_chunks(par_chunk_len())
            .enumerate()
            .map(|(c, e)| crate::lanes8::Decoded::new(e).map_err(|i| c * par_chunk_len() + i))
            .collect();
        return parts.into_iter().collect::<Result<_, _>>().map(Kept::Lanes);
    }
    decode_batch(elements).map(Kept::Dalek)
}

/// `compress(k·DeserializeElement(e))` for one chunk, by whichever path this CPU runs best, and
/// the decoded points if `keep` (for a proof); the index (within the chunk) of the first
/// invalid element on failure.
fn evaluate_chunk(
    k: &Scalar,
    half: &Scalar,
    elements: &[[u8; ELEMENT_LEN]],
    out: &mut [[u8; ELEMENT_LEN]],
    keep: bool,
    lanes: bool,
) -> Result<Kept, usize> {
    #[cfg(target_arch = "x86_64")]
    if lanes {
        if keep {
            let decoded = crate::lanes8::Decoded::new(elements)?;
            decoded.mul_compressed(k, out);
            return Ok(Kept::Lanes(vec![decoded]));
        }
        crate::lanes8::mul_compressed(k, elements, out)?;
        return Ok(Kept::empty());
    }
    let _ = (k, lanes);
    let points = elements
        .iter()
        .enumerate()
        .map(|(i, e)| decode_element(e).map_err(|_| i))
        .collect::<Result<Vec<_>, usize>>()?;
    halved_mul_compress(std::iter::repeat(half), &points, out);
    Ok(if keep {
        Kept::Dalek(points)
    } else {
        Kept::empty()
    })
}

/// Elements per parallel chunk: large enough to amortise one field inversion, small enough to
/// keep both cores busy on modest batches.
pub(crate) const fn par_chunk_len() -> usize {
    1024
}

/// Writes `compress(s_i·P_i)` for each point, where `halves` yields `s_i/2`:
/// `double_and_compress_batch` supplies the doubling and shares one inversion across the chunk.
fn halved_mul_compress<'s>(
    halves: impl Iterator<Item = &'s Scalar>,
    points: &[RistrettoPoint],
    out: &mut [[u8; ELEMENT_LEN]],
) {
    let halved: Vec<RistrettoPoint> = halves.zip(points).map(|(h, p)| h * p).collect();
    for (o, c) in out
        .iter_mut()
        .zip(RistrettoPoint::double_and_compress_batch(&halved))
    {
        *o = c.to_bytes();
    }
}

/// `compress(s_i·P_i)` for per-element scalars, in order.
pub(crate) fn mul_each_compress_batch(
    scalars: &[Scalar],
    points: &[RistrettoPoint],
) -> Vec<[u8; ELEMENT_LEN]> {
    let mut out = vec![[0u8; ELEMENT_LEN]; points.len()];
    out.par_chunks_mut(par_chunk_len())
        .zip(points.par_chunks(par_chunk_len()))
        .zip(scalars.par_chunks(par_chunk_len()))
        .for_each(|((out, points), scalars)| {
            // Halved blinds are as secret as the blinds.
            let halves: Zeroizing<Vec<Scalar>> =
                Zeroizing::new(scalars.iter().map(Scalar::div_by_2).collect());
            halved_mul_compress(halves.iter(), points, out)
        });
    out
}

/// `compress(k·HashToGroup(prefix || x))` for every input: the holder's tag precompute and the
/// querier's blinding both reduce to this.
pub(crate) fn hash_mul_compress_batch<I: AsRef<[u8]> + Sync>(
    mode: Mode,
    k: &Scalar,
    prefix: &[u8],
    inputs: &[I],
) -> Vec<[u8; ELEMENT_LEN]> {
    let mut out = vec![[0u8; ELEMENT_LEN]; inputs.len()];
    hash_mul_compress_into(mode, k, prefix, |i| inputs[i].as_ref(), &mut out);
    out
}

/// The first half of `HashToGroup(prefix || input(i))` for `i` in `base .. base + len`: the 64
/// uniform bytes (SHA-512) that the eight lanes' map takes from there.
pub(crate) fn uniform_bytes<'a>(
    mode: Mode,
    prefix: &[u8],
    input: &(impl Fn(usize) -> &'a [u8] + Sync),
    base: usize,
    len: usize,
) -> Vec<[u8; 64]> {
    let dst: [&[u8]; 2] = [b"HashToGroup-", mode.context_string()];
    (base..base + len)
        .map(|i| expand_message_xmd_64(&[prefix, input(i)], &dst))
        .collect()
}

/// [`hash_mul_compress_batch`] of `input(0), input(1), …` written into `out` (one result per
/// slot): callers with their inputs in an arena need no slice of references, and no second
/// buffer for the results.
pub(crate) fn hash_mul_compress_into<'a>(
    mode: Mode,
    k: &Scalar,
    prefix: &[u8],
    input: impl Fn(usize) -> &'a [u8] + Sync,
    out: &mut [[u8; ELEMENT_LEN]],
) {
    #[cfg(target_arch = "x86_64")]
    if eight_lanes() {
        out.par_chunks_mut(par_chunk_len())
            .enumerate()
            .for_each(|(c, out)| {
                let uniform = uniform_bytes(mode, prefix, &input, c * par_chunk_len(), out.len());
                crate::lanes8::hash_mul_compressed(k, &uniform, out)
            });
        return;
    }
    // k/2 is as secret as k.
    let half = Zeroizing::new(k.div_by_2());
    out.par_chunks_mut(par_chunk_len())
        .enumerate()
        .for_each(|(c, out)| {
            let base = c * par_chunk_len();
            let points: Vec<RistrettoPoint> = (0..out.len())
                .map(|i| hash_to_group(mode, &[prefix, input(base + i)]))
                .collect();
            halved_mul_compress(std::iter::repeat(&*half), &points, out)
        });
}

/// `compress(k·DeserializeElement(e))` for every received element. On an invalid element,
/// returns the index of the first one found (so the caller can say where).
pub(crate) fn evaluate_batch(
    k: &Scalar,
    elements: &[[u8; ELEMENT_LEN]],
) -> Result<Vec<[u8; ELEMENT_LEN]>, usize> {
    evaluate_into(k, elements, false).map(|(out, _)| out)
}

/// [`evaluate_batch`], also handing back the decoded input points (a proof over the same
/// elements then needs no second decompression).
pub(crate) fn evaluate_batch_keeping(
    k: &Scalar,
    elements: &[[u8; ELEMENT_LEN]],
) -> Result<(Vec<[u8; ELEMENT_LEN]>, Kept), usize> {
    evaluate_into(k, elements, true)
}

/// The evaluation, keeping the decoded points only if asked (160 bytes each: a count session's
/// preparation over a whole customer list must not).
fn evaluate_into(
    k: &Scalar,
    elements: &[[u8; ELEMENT_LEN]],
    keep: bool,
) -> Result<(Vec<[u8; ELEMENT_LEN]>, Kept), usize> {
    // k/2 is as secret as k.
    let half = Zeroizing::new(k.div_by_2());
    let mut out = vec![[0u8; ELEMENT_LEN]; elements.len()];
    // One path for every chunk, so that the kept points are all of one kind.
    let lanes = eight_lanes();
    // Every chunk reports, so the error names the first invalid element whatever the scheduling.
    let decoded: Vec<Result<Kept, usize>> = out
        .par_chunks_mut(par_chunk_len())
        .zip(elements.par_chunks(par_chunk_len()))
        .enumerate()
        .map(|(chunk, (out, elements))| {
            evaluate_chunk(k, &half, elements, out, keep, lanes)
                .map_err(|i| chunk * par_chunk_len() + i)
        })
        .collect();
    if let Some(i) = decoded.iter().filter_map(|r| r.as_ref().err()).min() {
        return Err(*i);
    }
    let points = Kept::concat(decoded.into_iter().flatten().collect());
    Ok((out, points))
}

/// `compress(k·DeserializeElement(e))` under each of several keys: one pass over `elements`
/// serves them all (a count pool preparing several sessions). On an invalid element, its index.
pub(crate) fn evaluate_under_each(
    keys: &[Scalar],
    elements: &[[u8; ELEMENT_LEN]],
) -> Result<Vec<Vec<[u8; ELEMENT_LEN]>>, usize> {
    if eight_lanes() {
        // Decoding in the lanes costs little next to a multiplication: each key decodes again.
        return keys.iter().map(|k| evaluate_batch(k, elements)).collect();
    }
    let decoded = decode_batch(elements)?;
    Ok(keys
        .iter()
        .map(|k| mul_compress_batch(k, &decoded))
        .collect())
}

/// `DeserializeElement` of every element, in parallel; the index of the first invalid one on
/// failure, whatever the scheduling.
pub(crate) fn decode_batch(elements: &[[u8; ELEMENT_LEN]]) -> Result<Vec<RistrettoPoint>, usize> {
    let decoded: Vec<Result<RistrettoPoint, usize>> = elements
        .par_iter()
        .enumerate()
        .map(|(i, e)| decode_element(e).map_err(|_| i))
        .collect();
    decoded.into_iter().collect()
}

/// `compress(k·P)` for points already decoded, in parallel and in order: one decoding can
/// serve several keys (a count pool preparing several sessions in one pass).
pub(crate) fn mul_compress_batch(k: &Scalar, points: &[RistrettoPoint]) -> Vec<[u8; ELEMENT_LEN]> {
    // k/2 is as secret as k.
    let half = Zeroizing::new(k.div_by_2());
    let mut out = vec![[0u8; ELEMENT_LEN]; points.len()];
    out.par_chunks_mut(par_chunk_len())
        .zip(points.par_chunks(par_chunk_len()))
        .for_each(|(out, points)| halved_mul_compress(std::iter::repeat(&*half), points, out));
    out
}

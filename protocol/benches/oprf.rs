//! Per-element costs: the curve primitives, and each PSI operation built from them, on one and
//! two threads, in one run so they can be compared.
//!
//! `cargo bench -p suyuan-protocol --bench oprf`
#![allow(clippy::unwrap_used, clippy::expect_used)] // bench code: a panic is a failure report

mod common;

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rayon::prelude::*;
use sha2::{Digest, Sha512};
use suyuan_protocol::oprf::{Mode, hash_to_group};
use suyuan_protocol::psi::{
    Blinding, EpochBuilder, Holder, HolderMessage, PreparedCount, QuerierMessage, Query, QueryKeys,
    QueryMode,
};

/// Elements per measured batch: four parallel chunks of 1024.
const N: usize = 4096;

fn pools() -> Vec<(usize, rayon::ThreadPool)> {
    [1, 2]
        .into_iter()
        .map(|t| {
            (
                t,
                rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .unwrap(),
            )
        })
        .collect()
}

fn primitives(c: &mut Criterion) {
    let mut g = c.benchmark_group("primitive");
    let mut rng = StdRng::seed_from_u64(1);
    let k = Scalar::random(&mut rng);
    let p = RistrettoPoint::random(&mut rng);
    let enc = p.compress();
    g.bench_function("hash_to_group", |b| {
        b.iter(|| hash_to_group(Mode::Oprf, &[b"mobile\x00", black_box(b"13800138000")]))
    });
    g.bench_function("scalar_mul", |b| b.iter(|| black_box(k) * black_box(p)));
    g.bench_function("decompress", |b| {
        b.iter(|| CompressedRistretto(black_box(enc.to_bytes())).decompress())
    });
    // Toward additive blinding (issue 15): a per-holder table of its public key turns the
    // querier's unblinding into a fixed-base multiplication, but its result must be compressed
    // on its own (the k/2 halving that batch compression relies on does not apply to E - ρ·pk).
    let table = curve25519_dalek::ristretto::RistrettoBasepointTable::create(&p);
    g.bench_function("fixed_base_table_mul", |b| {
        b.iter(|| black_box(&table) * &black_box(k))
    });
    g.bench_function("fixed_base_table_create", |b| {
        b.iter(|| curve25519_dalek::ristretto::RistrettoBasepointTable::create(black_box(&p)))
    });
    g.bench_function("compress_one", |b| b.iter(|| black_box(p).compress()));
    g.bench_function("sha512_tag", |b| {
        b.iter(|| {
            Sha512::new()
                .chain_update(b"suyuan-tag-v1")
                .chain_update(black_box(enc.as_bytes()))
                .finalize()
        })
    });
    let points: Vec<RistrettoPoint> = (0..1024)
        .map(|_| RistrettoPoint::random(&mut rng))
        .collect();
    let scalars: Vec<Scalar> = (0..1024).map(|_| Scalar::random(&mut rng)).collect();
    g.throughput(Throughput::Elements(1024));
    g.bench_function("compress_batch_1024", |b| {
        b.iter(|| RistrettoPoint::double_and_compress_batch(black_box(&points)))
    });
    g.bench_function("invert_batch_1024", |b| {
        b.iter_batched(
            || scalars.clone(),
            |mut s| Scalar::invert_batch_alloc(&mut s),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn operations(c: &mut Criterion) {
    let mut g = c.benchmark_group("per_element");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(20);
    let holder_keys = common::mobiles(N, 0);
    let mut rng = StdRng::seed_from_u64(2);
    let mut eb = EpochBuilder::new(&mut rng);
    eb.add(&holder_keys);
    let holder = Holder::new(Arc::new(eb.finish()));
    let mut qk = QueryKeys::new();
    for k in common::mobiles(N, N as u64 / 2) {
        qk.add_row(&[k]);
    }
    let query = Arc::new(Query::blind(&mut rng, qk.clone()).unwrap());
    let additive = Arc::new(Query::blind_as(&mut rng, qk.clone(), Blinding::Additive).unwrap());
    // The floor of preparing a count session: one multiplication per holder key, on points
    // already decompressed.
    let mobile = suyuan_protocol::ident::KeyType::Mobile;
    let points: Vec<RistrettoPoint> = holder
        .epoch()
        .read_points(mobile, 0..holder.epoch().size(mobile))
        .unwrap()
        .iter()
        .map(|p| CompressedRistretto(*p).decompress().unwrap())
        .collect();
    let r = Scalar::from(987_654_321u64);

    for (t, pool) in pools() {
        g.bench_with_input(BenchmarkId::new("count_prepare_floor", t), &t, |b, _| {
            b.iter(|| pool.install(|| points.par_iter().map(|p| r * p).collect::<Vec<_>>()))
        });
        // A count session's own tags: decompress, multiply, compress, hash, sort.
        g.bench_with_input(BenchmarkId::new("count_prepare", t), &t, |b, _| {
            b.iter(|| {
                pool.install(|| {
                    PreparedCount::prepare(holder.epoch(), &mut StdRng::seed_from_u64(5)).unwrap()
                })
            })
        });
        // Eight sessions in one pass, as the node's pool prepares them: each stored point is
        // decompressed once for all eight. Time per key per session = time / 8.
        g.bench_with_input(BenchmarkId::new("count_prepare_8", t), &t, |b, _| {
            b.iter(|| {
                pool.install(|| {
                    let mut rng = StdRng::seed_from_u64(6);
                    PreparedCount::prepare_many_while(holder.epoch(), 8, &mut rng, || true).unwrap()
                })
            })
        });
        g.bench_with_input(BenchmarkId::new("hash_to_group", t), &t, |b, _| {
            b.iter(|| {
                pool.install(|| {
                    holder_keys
                        .par_iter()
                        .map(|k| {
                            hash_to_group(
                                Mode::Oprf,
                                &[
                                    k.key_type().as_str().as_bytes(),
                                    b"\x00",
                                    k.value().as_bytes(),
                                ],
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
        });
        g.bench_with_input(BenchmarkId::new("holder_tag_precompute", t), &t, |b, _| {
            b.iter_batched(
                || EpochBuilder::new(&mut StdRng::seed_from_u64(3)),
                |mut eb| pool.install(|| eb.add(&holder_keys)),
                BatchSize::PerIteration,
            )
        });
        g.bench_with_input(BenchmarkId::new("blind", t), &t, |b, _| {
            b.iter_batched(
                || qk.clone(),
                |qk| pool.install(|| Query::blind(&mut StdRng::seed_from_u64(4), qk).unwrap()),
                BatchSize::PerIteration,
            )
        });
        // The holder's evaluation of one full chunk (decode, multiply, compress), without a
        // proof: a count session's, its key prepared.
        g.bench_with_input(BenchmarkId::new("evaluate_count", t), &t, |b, _| {
            b.iter_batched(
                || {
                    let (start, awaiting) = query.start(QueryMode::Count);
                    let prepared =
                        PreparedCount::prepare(holder.epoch(), &mut rand::rng()).unwrap();
                    let (accept, s) = holder
                        .handle_start_prepared(start, prepared, &mut rand::rng())
                        .unwrap();
                    let mut q = awaiting.handle_accept(accept).unwrap();
                    (s, q.poll_message().unwrap())
                },
                |(mut s, chunk)| pool.install(|| s.handle(chunk).unwrap()),
                BatchSize::PerIteration,
            )
        });
        // The same with the proof of a matches chunk.
        g.bench_with_input(BenchmarkId::new("evaluate_prove", t), &t, |b, _| {
            b.iter_batched(
                || {
                    let (start, awaiting) = query.start(QueryMode::Matches);
                    let (accept, s) = holder.handle_start(start, &mut rand::rng()).unwrap();
                    let mut q = awaiting.handle_accept(accept).unwrap();
                    (s, q.poll_message().unwrap())
                },
                |(mut s, chunk)| pool.install(|| s.handle(chunk).unwrap()),
                BatchSize::PerIteration,
            )
        });
        // The querier's unblinding and tagging of one full count chunk (no proof to check).
        g.bench_with_input(BenchmarkId::new("unblind_tag_count", t), &t, |b, _| {
            b.iter_batched(
                || {
                    let (start, awaiting) = query.start(QueryMode::Count);
                    let (accept, mut s) = holder.handle_start(start, &mut rand::rng()).unwrap();
                    let mut q = awaiting.handle_accept(accept).unwrap();
                    while let Some(m) = q.poll_message() {
                        s.handle(m).unwrap();
                    }
                    let mut eval = None;
                    while let Some(m) = s.poll_message().unwrap() {
                        match m {
                            HolderMessage::Evaluated(_) => eval = eval.or(Some(m)),
                            tags => q.handle(tags).unwrap(),
                        }
                    }
                    (q, eval.unwrap())
                },
                |(mut q, eval)| pool.install(|| q.handle(eval).unwrap()),
                BatchSize::PerIteration,
            )
        });
        // The querier's unblinding, proof check and tagging of one full matches chunk, with the
        // holder's tags loaded: what each further holder costs the querier, per blinding.
        for (name, query) in [
            ("unblind_verify_tag", &query),
            ("unblind_verify_tag_additive", &additive),
        ] {
            g.bench_with_input(BenchmarkId::new(name, t), &t, |b, _| {
                b.iter_batched(
                    || {
                        let (start, awaiting) = query.start(QueryMode::Matches);
                        let (accept, mut s) = holder.handle_start(start, &mut rand::rng()).unwrap();
                        let mut q = awaiting.handle_accept(accept).unwrap();
                        let QuerierMessage::Blinded(chunk) = q.poll_message().unwrap() else {
                            unreachable!()
                        };
                        s.handle(QuerierMessage::Blinded(chunk)).unwrap();
                        let mut eval = None;
                        while let Some(m) = s.poll_message().unwrap() {
                            match m {
                                HolderMessage::Evaluated(_) => eval = Some(m),
                                tags => q.handle(tags).unwrap(),
                            }
                        }
                        (q, eval.unwrap())
                    },
                    |(mut q, eval)| pool.install(|| q.handle(eval).unwrap()),
                    BatchSize::PerIteration,
                )
            });
        }
    }
    g.finish();
}

/// Issue 15, part 1, on one thread and in the same run: dalek's way (as the library did it
/// before: decompress or map each, multiply by k/2, `double_and_compress_batch`) against eight
/// points per instruction (`lanes8`), over 1024 received elements and 1024 hashed inputs. The
/// `per_element/*` benches below take whichever path the CPU runs (`SUYUAN_CURVE` is the
/// binary's switch, not the library's: call `oprf::set_dalek_only` to compare there).
#[cfg(target_arch = "x86_64")]
fn eight_lanes(c: &mut Criterion) {
    use suyuan_protocol::lanes8;
    let mut g = c.benchmark_group("lanes8");
    let mut rng = StdRng::seed_from_u64(3);
    let k = Scalar::random(&mut rng);
    let elements: Vec<[u8; 32]> = (0..1024)
        .map(|_| RistrettoPoint::random(&mut rng).compress().to_bytes())
        .collect();
    g.throughput(Throughput::Elements(1024));
    let half = k.div_by_2();
    g.bench_function("dalek_evaluate_1024", |b| {
        b.iter(|| {
            let halved: Vec<RistrettoPoint> = black_box(&elements)
                .iter()
                .map(|e| half * CompressedRistretto(*e).decompress().unwrap())
                .collect();
            RistrettoPoint::double_and_compress_batch(&halved)
        })
    });
    g.bench_function("dalek_mul_1024", |b| {
        let points: Vec<RistrettoPoint> = elements
            .iter()
            .map(|e| CompressedRistretto(*e).decompress().unwrap())
            .collect();
        b.iter(|| black_box(&points).iter().map(|p| k * p).collect::<Vec<_>>())
    });
    // HashToGroup's second half (the uniform bytes to a point), the multiplication and the
    // compression: what the tag precompute and the blinding do after SHA-512.
    let uniform: Vec<[u8; 64]> = (0..1024).map(|_| rand::RngExt::random(&mut rng)).collect();
    g.bench_function("dalek_map_mul_1024", |b| {
        b.iter(|| {
            let halved: Vec<RistrettoPoint> = black_box(&uniform)
                .iter()
                .map(|u| half * RistrettoPoint::from_uniform_bytes(u))
                .collect();
            RistrettoPoint::double_and_compress_batch(&halved)
        })
    });
    if lanes8::available() {
        let mut out = vec![[0u8; 32]; elements.len()];
        g.bench_function("lanes8_evaluate_1024", |b| {
            b.iter(|| lanes8::mul_compressed(&k, black_box(&elements), &mut out).unwrap())
        });
        g.bench_function("lanes8_map_mul_1024", |b| {
            b.iter(|| lanes8::hash_mul_compressed(&k, black_box(&uniform), &mut out))
        });
        // Additive blinding's parts (issue 15, part 2): decoding alone, `P + s·T` with a table
        // of `T` and a scalar per element (the unblinding `E − ρ·pk`, encoding included), the
        // blinding `map(u) + ρ·G`, and building a table.
        let scalars: Vec<Scalar> = (0..1024).map(|_| Scalar::random(&mut rng)).collect();
        let base = RistrettoPoint::random(&mut rng);
        let table = lanes8::BaseTable::new(&base);
        let decoded = lanes8::Decoded::new(&elements).unwrap();
        g.bench_function("lanes8_decode_1024", |b| {
            b.iter(|| lanes8::Decoded::new(black_box(&elements)).unwrap())
        });
        g.bench_function("lanes8_fixed_base_add_encode_1024", |b| {
            b.iter(|| decoded.add_base_mul_compressed(&table, black_box(&scalars), &mut out))
        });
        g.bench_function("lanes8_map_add_fixed_base_1024", |b| {
            b.iter(|| {
                lanes8::hash_add_base_mul_compressed(
                    &table,
                    black_box(&uniform),
                    &scalars,
                    &mut out,
                )
            })
        });
        g.bench_function("dalek_fixed_base_add_1024", |b| {
            let t = curve25519_dalek::ristretto::RistrettoBasepointTable::create(&base);
            let points: Vec<RistrettoPoint> = elements
                .iter()
                .map(|e| CompressedRistretto(*e).decompress().unwrap())
                .collect();
            b.iter(|| {
                black_box(&points)
                    .iter()
                    .zip(&scalars)
                    .map(|(p, s)| (p + &t * s).compress())
                    .collect::<Vec<_>>()
            })
        });
    }
    g.finish();
    // The proofs' multiscalar sums over one chunk of 4096, on one thread: dalek's Pippenger on
    // points it decoded, and the eight lanes' on points decoded in the lanes.
    let mut g = c.benchmark_group("multiscalar");
    g.throughput(Throughput::Elements(4096));
    let points: Vec<RistrettoPoint> = (0..4096)
        .map(|_| RistrettoPoint::random(&mut rng))
        .collect();
    let weights: Vec<Scalar> = (0..4096).map(|_| Scalar::random(&mut rng)).collect();
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    g.bench_function("dalek_4096", |b| {
        use curve25519_dalek::traits::VartimeMultiscalarMul;
        b.iter(|| RistrettoPoint::vartime_multiscalar_mul(black_box(&weights), &points))
    });
    if lanes8::available() {
        let encodings: Vec<[u8; 32]> = points.iter().map(|p| p.compress().to_bytes()).collect();
        let decoded = lanes8::Decoded::new(&encodings).unwrap();
        g.bench_function("lanes8_4096", |b| {
            b.iter(|| {
                one.install(|| lanes8::multiscalar_compressed(black_box(&weights), &[&decoded]))
            })
        });
    }
    g.finish();
}

#[cfg(target_arch = "x86_64")]
criterion_group!(benches, primitives, operations, eight_lanes);
#[cfg(not(target_arch = "x86_64"))]
criterion_group!(benches, primitives, operations);
criterion_main!(benches);

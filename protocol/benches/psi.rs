//! A whole in-memory PSI (blind, exchange through the wire codec, unblind and intersect) at
//! 2^16 keys per side on one and two threads; 2^20 per side on two threads when
//! `SUYUAN_BENCH_LARGE=1` (about ten minutes). The holder's epoch is built once, outside the
//! measurement (see `per_element/holder_tag_precompute` in the `oprf` bench).
//!
//! `cargo bench -p suyuan-protocol --bench psi`
#![allow(clippy::unwrap_used, clippy::expect_used)] // bench code: a panic is a failure report

mod common;

use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;
use suyuan_protocol::ident::KeyType;
use suyuan_protocol::psi::{EpochBuilder, Holder, Query, QueryKeys, QueryMode, run_local};

fn psi(c: &mut Criterion) {
    let mut sizes = vec![(16u32, vec![1usize, 2])];
    if std::env::var_os("SUYUAN_BENCH_LARGE").is_some() {
        sizes.push((20, vec![2]));
    }
    let mut g = c.benchmark_group("psi_in_memory");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(30));
    for (log_n, threads) in sizes {
        let n = 1usize << log_n;
        let mut eb = EpochBuilder::new(&mut StdRng::seed_from_u64(1));
        let hk = common::mobiles(n, 0);
        for chunk in hk.chunks(1 << 16) {
            eb.add(chunk);
        }
        drop(hk);
        let holder = Holder::new(Arc::new(eb.finish()));
        let mut rows = QueryKeys::new();
        for k in common::mobiles(n, n as u64 / 2) {
            rows.add_row(&[k]);
        }
        g.throughput(Throughput::Elements(n as u64));
        for t in threads {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap();
            let id = BenchmarkId::new(format!("2^{log_n}_matches"), format!("{t}_threads"));
            g.bench_function(id, |b| {
                b.iter_batched(
                    || rows.clone(),
                    |rows| {
                        let r = pool.install(|| {
                            run_local(
                                &holder,
                                &Arc::new(
                                    Query::blind(&mut StdRng::seed_from_u64(7), rows).unwrap(),
                                ),
                                QueryMode::Matches,
                                &mut StdRng::seed_from_u64(8),
                            )
                            .unwrap()
                        });
                        assert_eq!(r.matched_keys[&KeyType::Mobile], n as u64 / 2);
                    },
                    BatchSize::PerIteration,
                )
            });
        }
    }
    g.finish();
}

criterion_group!(benches, psi);
criterion_main!(benches);

//! `suyuan import`: a customer list becomes the node's new epoch.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use suyuan_protocol::ident::Key;
use suyuan_protocol::psi::EpochBuilder;

use crate::clock;
use crate::input::{InputOptions, InputSummary, for_each_record};
use crate::store::{self, EpochMeta};

/// Keys tagged per parallel batch while the file streams in.
const BATCH: usize = 1 << 16;

/// Reads `input`, tags every key under a fresh epoch key, and switches the node to it.
pub fn run(node: &Path, input: &Path, opts: &InputOptions) -> Result<(InputSummary, EpochMeta)> {
    store::check_node_dir(node)?;
    let mut builder = EpochBuilder::new(&mut rand::rng());
    let mut batch: Vec<Key> = Vec::with_capacity(BATCH);
    let progress = std::io::stderr().is_terminal();
    let started = Instant::now();
    let summary = for_each_record(input, opts, |row, rk| {
        batch.extend(rk.keys);
        if batch.len() >= BATCH {
            builder.add(&batch);
            batch.clear();
            if progress {
                let rate = row as f64 / started.elapsed().as_secs_f64().max(1e-3);
                eprint!("\rimport: {row} rows tagged ({rate:.0} rows/s)   ");
            }
        }
        Ok(())
    })?;
    builder.add(&batch);
    if progress {
        eprintln!();
    }
    let epoch = builder.finish();
    let meta = EpochMeta {
        id: epoch.id().to_string(),
        created: clock::now_unix(),
        sizes: epoch.sizes(),
        rows: summary.quality.rows,
        source: input
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
    };
    store::write_epoch(node, &epoch, &meta).context("storing the new epoch")?;
    Ok((summary, meta))
}

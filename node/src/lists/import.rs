//! `suyuan import`: a customer list becomes the node's new epoch.

use std::path::Path;

use anyhow::{Context, Result};
use suyuan_protocol::psi::EpochBuilder;

use crate::Progress;
use crate::clock;
use crate::evidence::statement::STATEMENT_CONTEXT;
use crate::evidence::{EpochStatement, Signed};
use crate::lists::{InputOptions, InputSummary, build_epoch};
use crate::node_dir::store::{EpochMeta, LabelSummary};
use crate::node_dir::{Lock, NodeDir};

/// Reads `input`, tags every key under a fresh epoch key, and switches the node to it.
pub fn run(
    node: &Path,
    input: &Path,
    opts: &InputOptions,
    progress: &mut dyn Progress,
) -> Result<(InputSummary, EpochMeta)> {
    let node = NodeDir::open(node)?;
    let _lock = node.lock(Lock::Import)?;
    crate::lists::check_labels(&opts.labels)?;
    let specs = opts.labels.iter().map(|l| l.spec.clone()).collect();
    let mut builder = EpochBuilder::new(&mut rand::rng()).with_labels(specs)?;
    progress.start("import", None);
    let summary = build_epoch(input, opts, &mut builder, |row| progress.set(row))?;
    progress.set(summary.quality.rows);
    progress.finish();
    let epoch = builder.finish();
    let created = clock::now_unix();
    // The node commits, in writing, to what it will serve under this epoch.
    let id = node.identity()?;
    let statement = EpochStatement::of(&epoch, &id.me.name, created);
    let signed = Signed::sign(STATEMENT_CONTEXT, &statement, &id.key, &id.cert)
        .context("signing the epoch statement")?;
    let meta = EpochMeta {
        id: epoch.id().to_string(),
        created,
        sizes: epoch.sizes(),
        rows: summary.quality.rows,
        source: input
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        statement: Some(signed),
        labels: summary
            .labels
            .iter()
            .zip(epoch.label_stats())
            .map(|((l, header, unreadable), stats)| LabelSummary {
                name: l.spec.name.clone(),
                kind: l.spec.kind,
                header: header.clone(),
                stats: stats.clone(),
                unreadable: *unreadable,
            })
            .collect(),
    };
    node.store()
        .write(&epoch, &meta)
        .context("storing the new epoch")?;
    Ok((summary, meta))
}

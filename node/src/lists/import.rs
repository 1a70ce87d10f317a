//! `suyuan import`: a customer list becomes the node's new epoch.

use std::path::Path;

use anyhow::{Context, Result, bail};
use suyuan_protocol::psi::{Epoch, EpochBuilder};

use crate::Progress;
use crate::clock;
use crate::evidence::statement::STATEMENT_CONTEXT;
use crate::evidence::{EpochStatement, Signed};
use crate::lists::{InputOptions, InputSummary, build_epoch};
use crate::lists::{LabelOption, build_labeled_epoch};
use crate::node_dir::key_runs::KeyRuns;
use crate::node_dir::keys_file::KeysFile;
use crate::node_dir::store::{CanarySummary, EpochMeta, EpochStore, LabelSummary};
use crate::node_dir::{Lock, NodeDir};
use suyuan_protocol::psi::labels::{CANARY_LABEL, LabelKind, LabelSpec, MAX_LABELS};

/// Reads `input`, tags every key under a fresh epoch key, and switches the node to it.
pub fn run(
    node: &Path,
    input: &Path,
    opts: &InputOptions,
    progress: &mut dyn Progress,
) -> Result<(InputSummary, EpochMeta)> {
    let node = NodeDir::open(node)?;
    let _lock = node.lock(Lock::Import)?;
    let store = node.store();
    let (summary, epoch, meta) = build_signed(&node, input, opts, progress, Some(&store))?;
    let stored = if runs_apply(opts) {
        store.write_adopting(&epoch, &meta)
    } else {
        store.write(&epoch, &meta)
    };
    stored.context("storing the new epoch")?;
    Ok((summary, meta))
}

/// Whether an import goes through runs on disk ([`crate::node_dir::key_runs`]): a list
/// without labels or canaries (labels are merged per key in memory).
fn runs_apply(opts: &InputOptions) -> bool {
    opts.labels.is_empty() && opts.canaries.is_none()
}

/// Reads `input` into a new epoch under a fresh key, with its statement signed by the node:
/// what `import` stores as the node's list and `publish` as a case's dump. With `runs_for`, a
/// list without labels goes through runs on disk and its keys file is written for that
/// store at [`EpochStore::keys_tmp`], to adopt.
pub(crate) fn build_signed(
    node: &NodeDir,
    input: &Path,
    opts: &InputOptions,
    progress: &mut dyn Progress,
    runs_for: Option<&EpochStore>,
) -> Result<(InputSummary, suyuan_protocol::psi::Epoch, EpochMeta)> {
    crate::lists::check_labels(&opts.labels)?;
    let mut specs: Vec<LabelSpec> = opts.labels.iter().map(|l| l.spec.clone()).collect();
    // Reserved even without --canaries: a column labelled so would be offered to every querier
    // and never withheld, as canaries are.
    if specs.iter().any(|s| s.name == CANARY_LABEL) {
        bail!("--label {CANARY_LABEL}=...: the name is kept for --canaries; choose another");
    }
    if opts.canaries.is_some() {
        if specs.len() >= MAX_LABELS {
            bail!(
                "--canaries takes one of the {MAX_LABELS} labels a list may carry: give at most {} --label",
                MAX_LABELS - 1
            );
        }
        specs.push(LabelSpec {
            name: CANARY_LABEL.into(),
            kind: LabelKind::Text,
        });
    }
    let runs = runs_for
        .filter(|_| runs_apply(opts))
        .map(|store| (store, KeyRuns::new(node.path())));
    let mut builder = EpochBuilder::new(&mut rand::rng()).with_labels(specs)?;
    if let Some((_, r)) = &runs {
        builder = builder.into_sink(r.sink())?;
    }
    progress.start("import", None);
    let summary = build_epoch(input, opts, &mut builder, |row| progress.set(row))?;
    progress.set(summary.quality.rows);
    progress.finish();
    let canary_rows = match &opts.canaries {
        Some(file) => Some((file, read_canaries(file, opts, &mut builder)?)),
        None => None,
    };
    let epoch = match runs {
        Some((store, runs)) => {
            let (id, path) = (builder.id(), store.keys_tmp(builder.id()));
            let _ = std::fs::remove_file(&path);
            let sizes = runs
                .write_keys_file(id, &path)
                .context("sorting the list's keys")?;
            let source = KeysFile::open(&path, id, &sizes).map_err(anyhow::Error::msg)?;
            builder.finish_with(sizes, Box::new(source))
        }
        None => builder.finish(),
    };
    let canaries = canary_rows
        .map(|(file, rows)| canary_summary(file, rows, &epoch))
        .transpose()?;
    let created = clock::now_unix();
    // The node commits, in writing, to what it will serve under this epoch.
    let id = node.identity()?;
    let statement = EpochStatement::of(&epoch, &id.me.name, created)?;
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
        canaries,
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
    Ok((summary, epoch, meta))
}

/// The canaries of `file` (identifier columns found as in any list, and an `export` column),
/// added to the epoch with the label `canary` = their export and no other; the rows read.
fn read_canaries(file: &Path, opts: &InputOptions, builder: &mut EpochBuilder) -> Result<u64> {
    let canary_opts = InputOptions {
        labels: vec![LabelOption {
            spec: LabelSpec {
                name: CANARY_LABEL.into(),
                kind: LabelKind::Text,
            },
            header: "export".into(),
        }],
        selection: opts.selection.clone(),
        ..InputOptions::default()
    };
    // The canary label comes last: the list's labels before it have no column here.
    let before = builder.label_specs().len().saturating_sub(1);
    let summary = build_labeled_epoch(file, &canary_opts, builder, (before, 0), |_| {})
        .with_context(|| format!("reading the canaries {}", file.display()))?;
    Ok(summary.quality.rows)
}

/// What the import says of its canaries: the exports are the canary label's values as the
/// epoch interned them (each held by a canary with a usable identifier).
fn canary_summary(file: &Path, records: u64, epoch: &Epoch) -> Result<CanarySummary> {
    let exports = epoch
        .labels()
        .and_then(|l| {
            let at = l.specs.iter().position(|s| s.name == CANARY_LABEL)?;
            l.values.get(at).cloned()
        })
        .unwrap_or_default();
    if records == 0 || exports.is_empty() {
        bail!(
            "{}: no canary with an export name (a column headed `export`, as `suyuan canary mint` writes)",
            file.display()
        );
    }
    Ok(CanarySummary {
        file: file
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        records,
        exports,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lists::parse_label;
    use crate::node_dir::identity::{self, Role};

    #[test]
    fn the_canary_name_is_reserved_and_takes_one_of_the_eight_labels() {
        let dir = tempfile::tempdir().unwrap();
        let (_, node) = identity::test_member(dir.path(), "bank", Role::Institution);
        let list = dir.path().join("list.csv");
        std::fs::write(
            &list,
            "手机号,a,b,c,d,e,f,g,h\n13800138000,1,2,3,4,5,6,7,8\n",
        )
        .unwrap();
        let canaries = dir.path().join("canaries.csv");
        std::fs::write(&canaries, "export,mobile\nx,13900139000\n").unwrap();
        let run = |labels: &[&str], canaries: Option<&Path>| {
            let opts = InputOptions {
                labels: labels.iter().map(|l| parse_label(l).unwrap()).collect(),
                canaries: canaries.map(Path::to_path_buf),
                ..InputOptions::default()
            };
            super::run(&node, &list, &opts, &mut crate::Silent).map(|_| ())
        };
        let e = run(&["canary=a"], None).unwrap_err().to_string();
        assert_eq!(
            e,
            "--label canary=...: the name is kept for --canaries; choose another"
        );
        let eight = [
            "l1=a", "l2=b", "l3=c", "l4=d", "l5=e", "l6=f", "l7=g", "l8=h",
        ];
        let e = run(&eight, Some(&canaries)).unwrap_err().to_string();
        assert_eq!(
            e,
            "--canaries takes one of the 8 labels a list may carry: give at most 7 --label"
        );
        run(&eight[..7], Some(&canaries)).unwrap();
        run(&eight, None).unwrap();
    }
}

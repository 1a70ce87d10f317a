//! `suyuan psi-local`: both roles in one process, through the real sessions and the real wire
//! encoding ([`run_local`]), so the library can be exercised from the command line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use rand_core::CryptoRng;
use suyuan_protocol::ident::KeyType;
use suyuan_protocol::psi::{
    EpochBuilder, Holder, Query, QueryKeys, QueryMode, QueryResult, run_local,
};

use crate::lists::{InputOptions, InputSummary, build_epoch, for_each_record};
use crate::text;

/// A psi-local run, validated.
#[derive(Debug, Clone)]
pub struct PsiLocalConfig {
    /// The holder's customer list.
    pub holder: PathBuf,
    /// How to read it.
    pub holder_input: InputOptions,
    /// The querier's dump.
    pub querier: PathBuf,
    /// How to read it.
    pub querier_input: InputOptions,
    /// `count` or `matches`.
    pub mode: QueryMode,
}

/// What psi-local found.
#[derive(Debug, Clone)]
pub struct PsiLocalReport {
    /// The holder file's summary.
    pub holder: InputSummary,
    /// The dump's summary.
    pub querier: InputSummary,
    /// The querier's result.
    pub result: QueryResult,
    /// `matches` mode: 1-based data-row numbers of the dump (header excluded) that matched.
    pub matched_rows: Option<Vec<u64>>,
}

impl PsiLocalReport {
    /// Matched rows over dump rows in `matches` mode; in `count` mode the largest, over key
    /// types, of matched keys over the dump's keys of that type.
    pub fn containment(&self) -> f64 {
        crate::query::containment(&self.result, self.querier.quality.rows)
    }
}

/// Runs holder and querier in this process.
pub fn run(cfg: &PsiLocalConfig, rng: &mut (impl CryptoRng + ?Sized)) -> Result<PsiLocalReport> {
    // Holder: tag the customer list in batches as it streams in.
    let mut builder = EpochBuilder::new(rng);
    let holder_summary = build_epoch(&cfg.holder, &cfg.holder_input, &mut builder, |_| {})?;
    let holder = Holder::new(Arc::new(builder.finish()));

    // Querier: one row per data row, so result indices map back to file rows.
    let mut keys = QueryKeys::new();
    let querier_summary = for_each_record(&cfg.querier, &cfg.querier_input, |_, rk| {
        keys.add_row(&rk.keys);
        Ok(())
    })?;
    let query = Arc::new(Query::blind(rng, keys).context("blinding the query")?);

    let result =
        run_local(&holder, &query, cfg.mode, &mut rand::rng()).context("running the exchange")?;
    let matched_rows = result
        .matched_rows
        .as_ref()
        .map(|rows| rows.iter().map(|r| r + 1).collect());
    Ok(PsiLocalReport {
        holder: holder_summary,
        querier: querier_summary,
        result,
        matched_rows,
    })
}

/// The report as aligned text for a terminal or a log.
pub fn render(cfg: &PsiLocalConfig, r: &PsiLocalReport) -> String {
    let mut out = String::new();
    for (role, path, s) in [
        ("holder", &cfg.holder, &r.holder),
        ("query", &cfg.querier, &r.querier),
    ] {
        let q = &s.quality;
        let _ = writeln!(out, "{role:<7}{} ({s})", path.display());
        let _ = writeln!(
            out,
            "       {} rows, {} without a usable key, {} values rejected",
            q.rows,
            q.rows_without_key,
            q.total_rejected()
        );
        out.push_str(&text::rejections(&q.rejected, "         "));
    }
    let _ = writeln!(out);
    out.push_str(&key_table(&r.result));
    let _ = writeln!(out);
    out.push_str(&outcome(r));
    let _ = writeln!(
        out,
        "epoch {}, tag length {} bytes",
        r.result.epoch, r.result.tag_len
    );
    out
}

/// Query, holder and matched keys per key type.
fn key_table(result: &QueryResult) -> String {
    let mut rows = vec![
        ["key type", "query keys", "holder keys", "matched"]
            .map(String::from)
            .to_vec(),
    ];
    rows.extend(result.query_keys.iter().map(|(kt, n)| {
        vec![
            kt.to_string(),
            n.to_string(),
            get(&result.holder_keys, *kt).to_string(),
            get(&result.matched_keys, *kt).to_string(),
        ]
    }));
    text::aligned(&rows, &[false, true, true, true])
}

/// What the mode revealed: the matched rows (the first 20) or only the best key share.
fn outcome(r: &PsiLocalReport) -> String {
    let containment = 100.0 * r.containment();
    let Some(rows) = &r.matched_rows else {
        return format!(
            "mode count: best key share {containment:.1}% (matched keys / dump keys of the best type); which rows matched is not revealed\n"
        );
    };
    let mut out = format!(
        "mode matches: {} of {} dump rows matched ({containment:.1}%)\n",
        rows.len(),
        r.querier.quality.rows,
    );
    if !rows.is_empty() {
        let shown: Vec<String> = rows.iter().take(20).map(u64::to_string).collect();
        let more = if rows.len() > 20 { ", ..." } else { "" };
        let _ = writeln!(out, "matched data rows: {}{more}", shown.join(", "));
    }
    out
}

fn get(m: &BTreeMap<KeyType, u64>, kt: KeyType) -> u64 {
    m.get(&kt).copied().unwrap_or(0)
}

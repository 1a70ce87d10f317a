//! `suyuan verify`: a query report checked with nothing but the federation CA certificate. The
//! querier's signature covers the whole report (its counts and rows); each holder's epoch
//! statement and signed answer cover what the holder knows (its epoch, key, sizes, the case and
//! query, and digests of every message). Every number in the report is checked against the one
//! signed for it, and the first disagreement is named.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use suyuan_protocol::ident::KeyType;
use suyuan_protocol::psi::{Query, QueryKeys, section_counts};

use super::{Report, attribution};
use crate::clock;
use crate::evidence::answer::body_digest;
use crate::evidence::{ANSWER_CONTEXT, Answer, EpochStatement, Evidence, Signed, bundle};
use crate::net::tls;
use crate::node_dir::identity::{PeerIdentity, Role};

/// The context string a querier signs its report under.
pub const REPORT_CONTEXT: &str = "suyuan query report v1";

/// What a verified report rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Who signed the report.
    pub querier: PeerIdentity,
    /// Per answering holder: its name and epoch.
    pub answers: Vec<(String, String)>,
    /// Peers that gave no answer (nothing of theirs to check).
    pub unanswered: Vec<String>,
}

/// The report as its querier signs it: everything but the signature.
pub fn unsigned(report: &Report) -> Report {
    Report {
        signature: None,
        ..report.clone()
    }
}

/// Checks `report` against the CA certificate `ca`. Certificates are judged at the time the
/// answers were signed (a certificate that expired since still vouches for what it signed
/// while valid); a report without answers, now.
pub fn verify(report: &Report, ca: &CertificateDer<'static>) -> Result<Verified, String> {
    let signed = report
        .signature
        .as_ref()
        .ok_or("the report is not signed by its querier")?;
    let signed_at = report
        .peers
        .iter()
        .filter_map(|p| p.answer.as_ref()?.open::<Answer>(ANSWER_CONTEXT).ok())
        .map(|a| a.time)
        .max()
        .unwrap_or_else(clock::now_unix);
    let querier = member(ca, signed, signed_at, "the report")?;
    let body: Report = signed
        .open(REPORT_CONTEXT)
        .map_err(|e| format!("the report's signature: {e}"))?;
    if body != unsigned(report) {
        return Err(format!(
            "the report differs from what {} signed ({})",
            querier.name,
            first_report_difference(&body, report)
        ));
    }
    check_attribution(report)?;
    let mut answers = Vec::new();
    let mut unanswered = Vec::new();
    let mut query_id = None;
    for p in &report.peers {
        if p.error.is_some() {
            unanswered.push(p.name.clone());
            continue;
        }
        let answer = check_peer(report, p, ca, &querier)?;
        if *query_id.get_or_insert_with(|| answer.query_id.clone()) != answer.query_id {
            return Err(format!("{}: its answer is of another query", p.name));
        }
        answers.push((p.name.clone(), answer.epoch));
    }
    Ok(Verified {
        querier,
        answers,
        unanswered,
    })
}

/// Each institution's attribution must follow from its figures and the report's population
/// (to a relative 10^-9, so that another build's rounding does not fail an honest report).
fn check_attribution(report: &Report) -> Result<(), String> {
    let Some(population) = report.population else {
        // No population, no attribution: a verdict must say what it was computed against.
        return match report.peers.iter().find(|p| p.attribution.is_some()) {
            Some(p) => Err(format!(
                "{}: an attribution without the population it was computed against",
                p.name
            )),
            None => Ok(()),
        };
    };
    let mut again = unsigned(report);
    attribution::apply(&mut again, population);
    for (a, p) in again.peers.iter().zip(&report.peers) {
        let agree = match (&a.attribution, &p.attribution) {
            (Some(a), Some(b)) => attribution::agrees(a, b),
            (None, None) => true,
            _ => false,
        };
        if !agree {
            return Err(format!(
                "{}: the attribution does not follow from its figures and the population of {population}",
                p.name
            ));
        }
    }
    Ok(())
}

/// Recomputes every answer of `report` from its evidence and the dump's keys (`rows` rows),
/// after [`verify`] passed: per answering holder, the querier's messages rebuilt from the dump
/// and the blind must hash to the `to_holder` digest the holder signed, the evidence's holder
/// messages to its `to_querier`, and the counts and rows they give must be the report's.
/// Returns each holder's name and recomputed matched keys.
pub fn verify_evidence(
    report: &Report,
    evidence: &Evidence,
    keys: QueryKeys,
    rows: u64,
) -> Result<Vec<(String, u64)>, String> {
    if evidence.mode != report.mode {
        return Err(format!(
            "the evidence is of a {} query, the report of a {} query",
            evidence.mode, report.mode
        ));
    }
    let query = Arc::new(
        Query::reblind_as(evidence.blind(), keys, evidence.blinding)
            .map_err(|e| format!("the evidence's blind: {e}"))?,
    );
    let dump_keys: BTreeMap<KeyType, u64> = section_counts(query.sections());
    if rows != report.dump.rows || dump_keys != report.dump.keys {
        return Err(format!(
            "the dump given has {rows} rows and keys {dump_keys:?}; the report's had {} rows and keys {:?} (another file, or read with other options)",
            report.dump.rows, report.dump.keys
        ));
    }
    let mut recomputed = Vec::new();
    for p in report.peers.iter().filter(|p| p.error.is_none()) {
        let r = replay_peer(report, p, evidence, &query)?;
        recomputed.push((p.name.clone(), r.matched_keys.values().sum()));
    }
    Ok(recomputed)
}

/// One holder's session replayed, checked against its signed digests and its report entry.
fn replay_peer(
    report: &Report,
    p: &super::PeerReport,
    evidence: &Evidence,
    query: &Arc<Query>,
) -> Result<super::PeerReport, String> {
    let name = &p.name;
    let answer: Answer = p
        .answer
        .as_ref()
        .ok_or_else(|| format!("{name}: no signed answer"))?
        .open(ANSWER_CONTEXT)
        .map_err(|e| format!("{name}'s answer: {e}"))?;
    if answer.query_id != evidence.query_id {
        return Err(format!("{name}: the evidence is of another query"));
    }
    let (_, messages) = evidence
        .peers
        .iter()
        .find(|(n, _)| n == name)
        .ok_or_else(|| format!("{name}: the evidence has no messages from it"))?;
    let asked = match &p.withheld {
        Some(w) => {
            let types: Vec<KeyType> = w.keys.keys().copied().collect();
            Arc::new(
                query
                    .without(&types)
                    .ok_or_else(|| format!("{name}: nothing was left to ask"))?,
            )
        }
        None => Arc::clone(query),
    };
    let signed = bundle::SignedDigests {
        to_holder: &answer.to_holder,
        to_querier: &answer.to_querier,
    };
    let result =
        bundle::replay(name, &asked, report.mode, messages, signed).map_err(|e| e.to_string())?;
    let spec = super::PeerSpec {
        name: name.clone(),
        address: p.address.clone(),
        key: None,
    };
    let again = super::PeerReport::from_result(&spec, &result, report.dump.rows);
    let figures: [(&str, bool); 7] = [
        ("matched keys", again.matched_keys == p.matched_keys),
        (
            "labels",
            again.labels == p.labels
                && again.labels_suppressed == p.labels_suppressed
                && again.row_labels == p.row_labels
                && again.label_min_cell == p.label_min_cell
                && again.labels_unreadable == p.labels_unreadable
                && again.label_totals == p.label_totals
                && again.label_lift == p.label_lift
                && again.label_timeline == p.label_timeline
                && again.canary_hits == p.canary_hits,
        ),
        (
            "matched rows",
            again.matched_rows == p.matched_rows && again.rows == p.rows,
        ),
        ("holder keys", again.holder_keys == p.holder_keys),
        ("row share", again.row_share == p.row_share),
        ("key shares", again.key_share == p.key_share),
        ("containment", again.containment == p.containment),
    ];
    match figures.iter().find(|(_, same)| !same) {
        Some((what, _)) => Err(format!(
            "{name}: {what} recomputed from {name}'s signed messages differ from the report's (recomputed matched keys {:?}, report {:?})",
            again.matched_keys, p.matched_keys
        )),
        None => Ok(again),
    }
}

/// The signer of a document, a member of the federation.
fn member(
    ca: &CertificateDer<'static>,
    signed: &Signed,
    at: u64,
    what: &str,
) -> Result<PeerIdentity, String> {
    let cert = signed.certificate().map_err(|e| format!("{what}: {e}"))?;
    tls::member_certificate(ca, &cert, at).map_err(|e| format!("{what}: {e:#}"))
}

/// One answering peer: its statement and answer signed by one institution certificate of this
/// federation, naming this peer, and every figure of its entry the signed one.
fn check_peer(
    report: &Report,
    p: &super::PeerReport,
    ca: &CertificateDer<'static>,
    querier: &PeerIdentity,
) -> Result<Answer, String> {
    let name = &p.name;
    let statement = p
        .statement
        .as_ref()
        .ok_or_else(|| format!("{name}: no signed epoch statement"))?;
    let signed = p
        .answer
        .as_ref()
        .ok_or_else(|| format!("{name}: no signed answer"))?;
    let answer: Answer = signed
        .open(ANSWER_CONTEXT)
        .map_err(|e| format!("{name}'s answer: {e}"))?;
    let holder = member(ca, signed, answer.time, &format!("{name}'s answer"))?;
    // A published seizure is held by the police node that published it.
    let role = if report.published {
        Role::Police
    } else {
        Role::Institution
    };
    if holder.role != role || holder.name != *name {
        return Err(format!(
            "{name}: the answer is signed by {} ({}), not by {role} {name}",
            holder.name, holder.role
        ));
    }
    // The holder signed which warrant it answered on: the report's must be that one.
    if answer.warrant != p.warrant.as_ref().map(crate::evidence::warrant::digest) {
        return Err(format!(
            "{name}: the warrant differs from the one {name} signed that it answered on"
        ));
    }
    if answer.published != report.published {
        return Err(format!(
            "{name}: the answer is of {}, the report of {}",
            list_asked(answer.published),
            list_asked(report.published)
        ));
    }
    if let Some(w) = &p.warrant {
        check_warrant(report, name, w, ca, querier, answer.time)?;
    }
    let st = EpochStatement::open(statement).map_err(|e| format!("{name}'s statement: {e}"))?;
    // A renewal keeps the key: the statement may carry an earlier certificate of it.
    let stated = member(ca, statement, st.created, &format!("{name}'s statement"))?;
    if stated.key != holder.key || stated.name != holder.name {
        return Err(format!(
            "{name}: statement and answer are signed by different keys"
        ));
    }
    let expected_keys = asked_keys(report, p);
    let checks: [(&str, bool); 11] = [
        (
            "the answer's epoch statement",
            answer.statement == body_digest(&statement.body),
        ),
        (
            "the answering node",
            answer.node == *name && st.node == *name,
        ),
        (
            "the querier",
            answer.querier == querier.name && answer.querier_fingerprint == querier.fingerprint,
        ),
        ("the case", answer.case == report.case),
        ("the mode", answer.mode == report.mode),
        (
            "the epoch",
            Some(&answer.epoch) == p.epoch.as_ref() && st.epoch == answer.epoch,
        ),
        ("the holder's keys", answer.holder_keys == p.holder_keys),
        (
            "the holder's keys against its statement",
            sizes_signed(&st, &answer),
        ),
        ("the dump's keys asked", answer.query_keys == expected_keys),
        (
            "the matched keys' types",
            p.matched_keys
                .keys()
                .all(|k| answer.query_keys.contains_key(k)),
        ),
        (
            "matched keys within what was asked",
            p.matched_keys
                .iter()
                .all(|(k, n)| *n <= answer.query_keys.get(k).copied().unwrap_or(0)),
        ),
    ];
    match checks.iter().find(|(_, ok)| !ok) {
        Some((what, _)) => Err(format!("{name}: {what} differs from what was signed")),
        None => Ok(answer),
    }
}

fn list_asked(published: bool) -> &'static str {
    if published {
        "a published case"
    } else {
        "its own list"
    }
}

/// The warrant a peer's answer was admitted on: signed by a court of the federation, for this
/// holder, case, mode and querier, and valid when the answer was signed.
fn check_warrant(
    report: &Report,
    name: &str,
    signed: &Signed,
    ca: &CertificateDer<'static>,
    querier: &PeerIdentity,
    at: u64,
) -> Result<(), String> {
    let w: crate::evidence::warrant::Warrant = signed
        .open(crate::evidence::warrant::WARRANT_CONTEXT)
        .map_err(|e| format!("{name}'s warrant: {e}"))?;
    let court = member(ca, signed, w.issued, &format!("{name}'s warrant"))?;
    if court.role != Role::Court || court.name != w.court {
        return Err(format!("{name}: the warrant is not signed by a court"));
    }
    let terms = crate::evidence::warrant::Terms {
        holder: name,
        querier,
        case: report.case.as_deref(),
        mode: report.mode,
        at,
    };
    let d = crate::evidence::warrant::short(signed);
    crate::evidence::warrant::check_terms(&w, &d, &terms)
        .map_err(|e| format!("{name}: when its answer was signed, {e}"))
}

/// The dump's distinct keys per type as asked of this peer: all of them, less the sections
/// it would not count.
fn asked_keys(report: &Report, p: &super::PeerReport) -> BTreeMap<KeyType, u64> {
    let mut keys = report.dump.keys.clone();
    if let Some(w) = &p.withheld {
        keys.retain(|k, _| !w.keys.contains_key(k));
    }
    keys
}

fn sizes_signed(st: &EpochStatement, answer: &Answer) -> bool {
    answer
        .holder_keys
        .iter()
        .all(|(k, n)| st.keys.get(k).copied().unwrap_or(0) == *n)
}

/// Where an edited report first differs from the signed one, for the message.
fn first_report_difference(signed: &Report, report: &Report) -> String {
    if signed.case != report.case || signed.mode != report.mode {
        return "case or mode".into();
    }
    if signed.dump != report.dump {
        return "the dump's summary".into();
    }
    for (a, b) in signed.peers.iter().zip(&report.peers) {
        if a != b {
            let field = if a.matched_keys != b.matched_keys {
                "matched keys"
            } else if a.matched_rows != b.matched_rows || a.rows != b.rows {
                "matched rows"
            } else {
                "its entry"
            };
            return format!("{}: {field}", b.name);
        }
    }
    if signed.peers.len() != report.peers.len() {
        return "the list of peers".into();
    }
    "other fields".into()
}

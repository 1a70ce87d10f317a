//! Warrants: a court's (or prosecutor's) signed permission for one querier to ask one holder in
//! one mode under one case, until a date, on a stated legal basis, and optionally on the count
//! the holder's own node signed first. The querier sends it in its hello; the holder checks it
//! before admitting the query ([`check`]), and both sides write its digest to their audit logs.
//!
//! The receipt is the holder's signed answer to the count query the warrant was granted on,
//! with the count the querier's signed report gave for it. The holder cannot know the count
//! (that is the point of the PSI); it checks that the answer is its own, of this case and this
//! querier, and the court vouches, by signing, that the querier's signed report said `count`.

use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
use serde::{Deserialize, Serialize};
use suyuan_protocol::psi::QueryMode;

use super::answer::body_digest;
use super::{ANSWER_CONTEXT, Answer, Signed};
use crate::node_dir::identity::{PeerIdentity, Role};

/// The context string every warrant is signed under.
pub const WARRANT_CONTEXT: &str = "suyuan warrant v1";

/// Longest legal basis kept, in characters.
pub const MAX_BASIS_CHARS: usize = 2000;

/// The minimum count on a receipt when `[policy.warrant] receipt = true` and no other is given:
/// the 3,000 records of personal information above which the law on serious cases applies.
pub const DEFAULT_MIN_COUNT: u64 = 3000;

/// What a court signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warrant {
    /// Random, hex: names this warrant in audit logs along with its digest.
    pub id: String,
    /// The court node that signs it.
    pub court: String,
    /// The case it is granted in.
    pub case: String,
    /// The holder it is addressed to.
    pub holder: String,
    /// The querier allowed to use it (`None`: any police node of the federation).
    pub querier: Option<String>,
    /// The mode it allows.
    pub mode: QueryMode,
    /// Unix time of issue; not valid before.
    pub issued: u64,
    /// Unix time from which it is no longer valid.
    pub expires: u64,
    /// The legal basis, as the court wrote it.
    pub basis: String,
    /// The signed count it was granted on.
    pub receipt: Option<Receipt>,
}

/// The count a warrant was granted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The holder's signed answer to the count query.
    pub answer: Signed,
    /// The largest matched-key count over key types that the querier's signed report gave for
    /// this holder (each key type counts distinct people).
    pub count: u64,
    /// SHA-256 of the querier's signed report body, hex.
    pub report: String,
    /// Who signed that report.
    pub querier: String,
}

/// Why a holder does not accept a warrant. Sent to the querier inside the refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum WarrantRefusal {
    /// The policy asks for a warrant in this mode and the hello carried none.
    #[error("a warrant is required for {0} queries")]
    Missing(QueryMode),
    /// The document or its signature does not verify.
    #[error("warrant {0}: forged or damaged ({1})")]
    Forged(String, String),
    /// Signed by a certificate that is not a court's of this federation.
    #[error("warrant {0}: not signed by a court of this federation ({1})")]
    NotACourt(String, String),
    /// Addressed to another holder.
    #[error("warrant {digest}: addressed to {holder}, not to this node")]
    Misdirected {
        /// The warrant's digest (short).
        digest: String,
        /// The holder it names.
        holder: String,
    },
    /// Granted in another case than the query's.
    #[error("warrant {digest}: granted in case {granted:?}, not in case {asked:?}")]
    AnotherCase {
        /// The warrant's digest (short).
        digest: String,
        /// Its case.
        granted: String,
        /// The query's case.
        asked: String,
    },
    /// Allows another mode.
    #[error("warrant {digest}: allows {granted} queries, not {asked}")]
    AnotherMode {
        /// The warrant's digest (short).
        digest: String,
        /// The mode it allows.
        granted: QueryMode,
        /// The mode asked.
        asked: QueryMode,
    },
    /// Granted to another querier.
    #[error("warrant {digest}: granted to {granted}, not to {asked}")]
    AnotherQuerier {
        /// The warrant's digest (short).
        digest: String,
        /// The querier it names.
        granted: String,
        /// The querier asking.
        asked: String,
    },
    /// Past its expiry (or before its issue).
    #[error("warrant {digest}: not valid now (valid from {issued} to {expires}, unix time)")]
    Expired {
        /// The warrant's digest (short).
        digest: String,
        /// Its issue.
        issued: u64,
        /// Its expiry.
        expires: u64,
    },
    /// The policy asks for a receipt and the warrant has none.
    #[error("warrant {0}: the policy asks for the signed count it was granted on, and it has none")]
    ReceiptMissing(String),
    /// The receipt is not this holder's answer to this querier's count query in this case.
    #[error("warrant {0}: its receipt {1}")]
    ReceiptInvalid(String, String),
    /// The receipt's count is under the policy's minimum.
    #[error("warrant {digest}: granted on a count of {count}, below this node's minimum of {min}")]
    ReceiptTooSmall {
        /// The warrant's digest (short).
        digest: String,
        /// The count on the receipt.
        count: u64,
        /// The policy's minimum.
        min: u64,
    },
}

/// The full digest of a signed warrant (SHA-256 of its body, hex): what audit logs name.
pub fn digest(signed: &Signed) -> String {
    body_digest(&signed.body)
}

/// The first 16 hex digits of [`digest`], for messages.
pub fn short(signed: &Signed) -> String {
    digest(signed).chars().take(16).collect()
}

/// What a holder checks a warrant against.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The federation CA.
    pub ca: &'a CertificateDer<'static>,
    /// Its revocation lists.
    pub crls: &'a [CertificateRevocationListDer<'static>],
    /// This holder: its name and key.
    pub holder: &'a PeerIdentity,
    /// The querier, from TLS.
    pub querier: &'a PeerIdentity,
    /// The hello's case and mode.
    pub case: Option<&'a str>,
    /// The mode asked.
    pub mode: QueryMode,
    /// Unix time now.
    pub now: u64,
    /// The minimum receipt count, if the policy asks for a receipt.
    pub min_count: Option<u64>,
}

/// A warrant that passed every check of [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// What it says.
    pub warrant: Warrant,
    /// Its digest, for the audit logs.
    pub digest: String,
    /// The court that signed it.
    pub court: PeerIdentity,
}

/// Checks `signed` for the query described by `want`, in order: signature, a court's certificate
/// of this federation (valid at `now`, not revoked), holder, case, mode, querier, validity,
/// receipt. The first failure is the refusal.
pub fn check(signed: &Signed, want: &Expected<'_>) -> Result<Accepted, WarrantRefusal> {
    let d = short(signed);
    let warrant: Warrant = signed
        .open(WARRANT_CONTEXT)
        .map_err(|e| WarrantRefusal::Forged(d.clone(), e.to_string()))?;
    let court = signer(signed, want.ca, want.crls, want.now)
        .map_err(|e| WarrantRefusal::NotACourt(d.clone(), e))?;
    if court.role != Role::Court || court.name != warrant.court {
        return Err(WarrantRefusal::NotACourt(
            d,
            format!("signed by {} ({})", court.name, court.role),
        ));
    }
    check_terms(
        &warrant,
        &d,
        &Terms {
            holder: &want.holder.name,
            querier: want.querier,
            case: want.case,
            mode: want.mode,
            at: want.now,
        },
    )?;
    if let Some(min) = want.min_count {
        let Some(receipt) = &warrant.receipt else {
            return Err(WarrantRefusal::ReceiptMissing(d));
        };
        check_receipt(receipt, &warrant, want)
            .map_err(|why| WarrantRefusal::ReceiptInvalid(d.clone(), why))?;
        if receipt.count < min {
            return Err(WarrantRefusal::ReceiptTooSmall {
                digest: d,
                count: receipt.count,
                min,
            });
        }
    }
    Ok(Accepted {
        digest: digest(signed),
        warrant,
        court,
    })
}

/// The terms a warrant is held to: one query, at one time.
#[derive(Debug, Clone, Copy)]
pub struct Terms<'a> {
    /// The holder asked.
    pub holder: &'a str,
    /// The querier asking.
    pub querier: &'a PeerIdentity,
    /// The query's case.
    pub case: Option<&'a str>,
    /// The query's mode.
    pub mode: QueryMode,
    /// When (the holder's now, or when the answer was signed).
    pub at: u64,
}

/// Holder, case, mode, querier (a named one, or any police node) and validity: what the
/// holder, the querier before sending, and `verify` afterwards all check.
pub fn check_terms(w: &Warrant, d: &str, want: &Terms<'_>) -> Result<(), WarrantRefusal> {
    let d = d.to_string();
    if w.holder != want.holder {
        return Err(WarrantRefusal::Misdirected {
            digest: d,
            holder: w.holder.clone(),
        });
    }
    if want.case != Some(w.case.as_str()) {
        return Err(WarrantRefusal::AnotherCase {
            digest: d,
            granted: w.case.clone(),
            asked: want.case.unwrap_or("").to_string(),
        });
    }
    if w.mode != want.mode {
        return Err(WarrantRefusal::AnotherMode {
            digest: d,
            granted: w.mode,
            asked: want.mode,
        });
    }
    let granted = match &w.querier {
        Some(q) => *q == want.querier.name,
        // Granted to no one by name: to the police, never to an institution or researcher.
        None => want.querier.role == Role::Police,
    };
    if !granted {
        return Err(WarrantRefusal::AnotherQuerier {
            digest: d,
            granted: w
                .querier
                .clone()
                .unwrap_or_else(|| "any police node".into()),
            asked: want.querier.name.clone(),
        });
    }
    if want.at < w.issued || want.at >= w.expires {
        return Err(WarrantRefusal::Expired {
            digest: d,
            issued: w.issued,
            expires: w.expires,
        });
    }
    Ok(())
}

/// The receipt must be this holder's own signed answer (its key), to a count query of this
/// querier in this case.
fn check_receipt(r: &Receipt, w: &Warrant, want: &Expected<'_>) -> Result<(), String> {
    let answer: Answer = r
        .answer
        .open(ANSWER_CONTEXT)
        .map_err(|e| format!("does not verify: {e}"))?;
    let cert = r.answer.certificate().map_err(|e| e.to_string())?;
    let by = crate::node_dir::identity::peer_identity(&cert).map_err(|e| format!("{e:#}"))?;
    if by.key != want.holder.key || answer.node != want.holder.name {
        return Err(format!("is an answer of {}, not of this node", answer.node));
    }
    if answer.mode != QueryMode::Count || answer.published {
        return Err(format!(
            "is the answer to a {} query{}, not a count of this node's list",
            answer.mode,
            if answer.published {
                " of a published case"
            } else {
                ""
            }
        ));
    }
    if answer.case.as_deref() != Some(w.case.as_str()) {
        return Err(format!("is of case {:?}, not {:?}", answer.case, w.case));
    }
    if answer.querier != want.querier.name || r.querier != want.querier.name {
        return Err(format!(
            "is of a query by {}, not by {}",
            answer.querier, want.querier.name
        ));
    }
    Ok(())
}

/// The signer of a document: a member certificate of the federation at `at`, not revoked.
pub fn signer(
    signed: &Signed,
    ca: &CertificateDer<'static>,
    crls: &[CertificateRevocationListDer<'static>],
    at: u64,
) -> Result<PeerIdentity, String> {
    let cert = signed.certificate().map_err(|e| e.to_string())?;
    crate::net::tls::member_certificate_checked(ca, crls, &cert, at).map_err(|e| format!("{e:#}"))
}

/// What a court grants, before it is signed.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The case.
    pub case: String,
    /// The holder addressed.
    pub holder: String,
    /// The querier allowed (`None`: the receipt's querier, or any police node without one).
    pub querier: Option<String>,
    /// The mode allowed.
    pub mode: QueryMode,
    /// Seconds of validity from now.
    pub valid_for: u64,
    /// The legal basis.
    pub basis: String,
    /// The signed count it is granted on.
    pub receipt: Option<Receipt>,
}

/// Signs `grant` with the court node's key: the warrant and its signed form.
pub fn issue(
    court: &crate::node_dir::identity::NodeIdentity,
    grant: Grant,
    now: u64,
) -> anyhow::Result<(Warrant, Signed)> {
    use anyhow::{Context, bail};
    if court.me.role != Role::Court {
        bail!(
            "{} is a {} node: only a node issued with --role court signs warrants",
            court.me.name,
            court.me.role
        );
    }
    if !crate::node_dir::config::valid_case(&grant.case) {
        bail!("--case {:?}: use 1 to 128 printable characters", grant.case);
    }
    crate::node_dir::identity::check_node_name(&grant.holder)
        .with_context(|| format!("--holder {:?}", grant.holder))?;
    let basis = grant.basis.trim();
    if basis.is_empty() || basis.chars().count() > MAX_BASIS_CHARS {
        bail!("--basis: state the legal basis in 1 to {MAX_BASIS_CHARS} characters");
    }
    if basis.chars().any(|c| c.is_control() && c != '\n') {
        bail!("--basis: control characters are not allowed (line breaks are)");
    }
    if grant.valid_for == 0 {
        bail!("--expires: a warrant must be valid for some time");
    }
    let querier = match (&grant.querier, &grant.receipt) {
        (Some(q), Some(r)) if *q != r.querier => bail!(
            "--querier {q}: the receipt is of a query by {}, the warrant must be for the same querier",
            r.querier
        ),
        (Some(q), _) => Some(q.clone()),
        (None, Some(r)) => Some(r.querier.clone()),
        (None, None) => None,
    };
    let warrant = Warrant {
        id: hex::encode(rand::random::<[u8; 16]>()),
        court: court.me.name.clone(),
        case: grant.case,
        holder: grant.holder,
        querier,
        mode: grant.mode,
        issued: now,
        expires: now.saturating_add(grant.valid_for),
        basis: basis.to_string(),
        receipt: grant.receipt,
    };
    let signed = Signed::sign(WARRANT_CONTEXT, &warrant, &court.key, &court.cert)
        .context("signing the warrant")?;
    // It travels in the hello, which a holder reads only so far before admission.
    let hello = crate::net::frame::ClientFrame::Hello(crate::net::frame::Hello {
        warrant: Some(signed.clone()),
        ..crate::net::frame::Hello::new(warrant.mode, Some(warrant.case.clone()))
    });
    let len = suyuan_protocol::codec::encode(&hello)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .len();
    if len > crate::net::frame::MAX_HELLO_LEN {
        bail!(
            "the warrant would not fit in a hello ({len} bytes, at most {}): shorten --basis",
            crate::net::frame::MAX_HELLO_LEN
        );
    }
    Ok((warrant, signed))
}

/// The receipt for `holder` from a count report: the report must verify against `ca` (the
/// querier's signature and the holder's signed answer), be a count in `case`, and hold an
/// answer of `holder`.
pub fn receipt(
    report: &crate::query::Report,
    holder: &str,
    case: &str,
    ca: &CertificateDer<'static>,
) -> Result<Receipt, String> {
    let verified = crate::query::verify::verify(report, ca)?;
    if report.mode != QueryMode::Count {
        return Err(format!(
            "the receipt is a {} report; a warrant is granted on a count",
            report.mode
        ));
    }
    if report.case.as_deref() != Some(case) {
        return Err(format!(
            "the receipt is of case {:?}, the warrant of {case:?}",
            report.case
        ));
    }
    let peer = report
        .peers
        .iter()
        .find(|p| p.name == holder && p.error.is_none())
        .ok_or_else(|| format!("the receipt holds no answer of {holder}"))?;
    let answer = peer
        .answer
        .clone()
        .ok_or_else(|| format!("the receipt holds no signed answer of {holder}"))?;
    let signed = report
        .signature
        .as_ref()
        .ok_or("the report is not signed by its querier")?;
    Ok(Receipt {
        answer,
        count: peer.matched_keys.values().copied().max().unwrap_or(0),
        report: body_digest(&signed.body),
        querier: verified.querier.name,
    })
}

/// Reads a warrant file (the signed JSON `warrant issue` writes) and what it says, without
/// judging it.
pub fn read(path: &std::path::Path) -> anyhow::Result<(Warrant, Signed)> {
    use anyhow::Context;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the warrant {}", path.display()))?;
    let signed: Signed = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a suyuan warrant", path.display()))?;
    let warrant = signed
        .open(WARRANT_CONTEXT)
        .map_err(|e| anyhow::anyhow!("{}: not a valid warrant: {e}", path.display()))?;
    Ok((warrant, signed))
}

#[cfg(test)]
mod tests;

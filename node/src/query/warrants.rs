//! `query --warrant`: the warrants a querier sends, checked before any holder is asked, so that
//! a warrant the holder would refuse (for another holder, case or mode, expired, not a court's)
//! is caught here with the file named, and no query goes out on it.

use std::collections::BTreeMap;

use anyhow::{Result, bail};

use super::QueryOptions;
use crate::evidence::Signed;
use crate::evidence::warrant::{self, Warrant};
use crate::node_dir::identity::{NodeIdentity, Role};

/// The warrants of `opts`, by the holder they are addressed to.
pub fn load(opts: &QueryOptions, id: &NodeIdentity, now: u64) -> Result<BTreeMap<String, Signed>> {
    let mut out = BTreeMap::new();
    for path in &opts.warrants {
        let (w, signed) = warrant::read(path)?;
        let at = path.display();
        if let Err(why) = fits(&w, &signed, opts, id, now) {
            bail!("{at}: {why}");
        }
        if out.insert(w.holder.clone(), signed).is_some() {
            bail!(
                "{at}: a second warrant for {}; give one per holder",
                w.holder
            );
        }
    }
    Ok(out)
}

/// Whether a warrant can be used for this query: a court's of this federation, for a peer
/// asked, this case, mode and querier, valid now.
fn fits(
    w: &Warrant,
    signed: &Signed,
    opts: &QueryOptions,
    id: &NodeIdentity,
    now: u64,
) -> Result<(), String> {
    let court = warrant::signer(signed, &id.ca, &id.crls, now)
        .map_err(|e| format!("not signed by a member of this federation: {e}"))?;
    if court.role != Role::Court || court.name != w.court {
        return Err(format!(
            "signed by {} ({}), not by a court",
            court.name, court.role
        ));
    }
    if !opts.peers.iter().any(|p| p.name == w.holder) {
        return Err(format!(
            "addressed to {}, who is not among the peers asked",
            w.holder
        ));
    }
    let terms = warrant::Terms {
        holder: &w.holder,
        querier: &id.me,
        case: opts.case.as_deref(),
        mode: opts.mode,
        at: now,
    };
    let d = warrant::short(signed);
    warrant::check_terms(w, &d, &terms).map_err(|e| {
        // The holder's wording names the warrant by digest; here the file is named already.
        let text = e.to_string();
        text.strip_prefix(&format!("warrant {d}: "))
            .unwrap_or(&text)
            .to_string()
    })?;
    encoded_fits(signed, opts)
}

/// A warrant must fit in the hello a holder reads before admission.
fn encoded_fits(signed: &Signed, opts: &QueryOptions) -> Result<(), String> {
    let hello = crate::net::frame::ClientFrame::Hello(crate::net::frame::Hello {
        warrant: Some(signed.clone()),
        ..crate::net::frame::Hello::new(opts.mode, opts.case.clone())
    });
    let len = suyuan_protocol::codec::encode(&hello)
        .map_err(|e| e.to_string())?
        .len();
    if len > crate::net::frame::MAX_HELLO_LEN {
        return Err(format!(
            "too large to send: a hello with it is {len} bytes, above the {} a holder reads",
            crate::net::frame::MAX_HELLO_LEN
        ));
    }
    Ok(())
}

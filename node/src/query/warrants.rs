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
    if opts.case.as_deref() != Some(w.case.as_str()) {
        return Err(format!(
            "granted in case {:?}; this query is {}",
            w.case,
            opts.case
                .as_ref()
                .map_or("without a case".to_string(), |c| format!("in case {c:?}"))
        ));
    }
    if w.mode != opts.mode {
        return Err(format!(
            "allows {} queries; this one is {}",
            w.mode, opts.mode
        ));
    }
    if let Some(q) = &w.querier
        && *q != id.me.name
    {
        return Err(format!("granted to {q}, not to {}", id.me.name));
    }
    if now < w.issued || now >= w.expires {
        return Err(format!(
            "not valid now (from {} to {})",
            crate::clock::rfc3339(w.issued),
            crate::clock::rfc3339(w.expires)
        ));
    }
    Ok(())
}

//! The node's own commands: the CA, import, serve, status, the audit log and the tag cache.

use std::path::Path;

use anyhow::{Context, Result};
use suyuan_node::lists::{InputOptions, import as list_import};
use suyuan_node::net::server::Server;
use suyuan_node::node_dir::NodeDir;
use suyuan_node::node_dir::audit::Entry;
use suyuan_node::node_dir::config::{DEFAULT_NODE_TOML, NODE_TOML};
use suyuan_node::node_dir::identity::{self, Role};
use suyuan_node::node_dir::revocation;
use suyuan_node::node_dir::store::StoreError;
use suyuan_node::{clock, text};

use super::args::{ImportArgs, ServeArgs};
use super::progress::Bar;
use super::{render, runtime, say, write_file};

pub(crate) fn ca_init(dir: &Path, name: &str) -> Result<()> {
    let fp = identity::ca_init(dir, name)?;
    outln!(
        "created CA {name:?} in {} (certificate sha256 {fp})",
        dir.display()
    );
    Ok(())
}

pub(crate) fn ca_renew(ca: &Path, node: &Path, days: u32) -> Result<()> {
    let (fp, until) = identity::ca_renew(ca, node, days)?;
    outln!(
        "renewed the certificate of {} (sha256 {fp}), valid until {}; the old one is kept as node.crt.previous",
        node.display(),
        clock::rfc3339(until)
    );
    Ok(())
}

pub(crate) fn ca_issue(ca: &Path, name: &str, role: Role, out: &Path, days: u32) -> Result<()> {
    let fp = identity::ca_issue_for(ca, name, role, out, days)?;
    write_file(&out.join(NODE_TOML), DEFAULT_NODE_TOML)?;
    outln!(
        "issued {name} ({role}) into {} (certificate sha256 {fp}); edit {NODE_TOML} for its policy",
        out.display()
    );
    Ok(())
}

pub(crate) fn ca_revoke(
    ca: &Path,
    name: &str,
    cert: Option<&Path>,
    reason: &str,
    days: u32,
) -> Result<()> {
    let (path, info) = revocation::ca_revoke(ca, name, cert, reason, days)?;
    outln!(
        "{name} revoked; revocation list number {} ({} revoked) written to {}: install it on every node with `suyuan crl install --node NODE {}`",
        info.number,
        info.revoked,
        path.display(),
        path.display()
    );
    Ok(())
}

pub(crate) fn ca_directory(
    ca: &Path,
    add: &[suyuan_node::query::PeerSpec],
    days: u32,
    out: &Path,
) -> Result<()> {
    let members: Vec<(String, String)> = add
        .iter()
        .map(|p| (p.name.clone(), p.address.clone()))
        .collect();
    let dir = suyuan_node::evidence::directory::ca_directory(ca, &members, days, out)?;
    outln!(
        "federation directory number {} ({} members, current until {}) written to {}",
        dir.number,
        dir.members.len(),
        clock::rfc3339(dir.expires),
        out.display()
    );
    Ok(())
}

pub(crate) fn ca_crl(ca: &Path, out: &Path, days: u32) -> Result<()> {
    let (path, info) = revocation::ca_crl(ca, days)?;
    // From the bytes, not a copy: `--out` may name the CA's own crl.pem.
    let pem = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    std::fs::write(out, pem).with_context(|| format!("cannot write {}", out.display()))?;
    outln!(
        "revocation list number {} ({} revoked, due {}) written to {}",
        info.number,
        info.revoked,
        clock::rfc3339(info.next_update),
        out.display()
    );
    Ok(())
}

pub(crate) fn crl_install(node: &Path, file: &Path) -> Result<()> {
    let (info, warnings) = revocation::install(&NodeDir::open(node)?, file)?;
    outln!(
        "installed revocation list number {} ({} revoked, due {}) in {}; a running serve applies it within a second",
        info.number,
        info.revoked,
        clock::rfc3339(info.next_update),
        node.display()
    );
    for w in warnings {
        eprintln!("warning: {w}");
    }
    Ok(())
}

pub(crate) fn import(a: ImportArgs, quiet: bool) -> Result<()> {
    let opts = InputOptions {
        labels: a.labels,
        canaries: a.canaries,
        ..a.input_args.options()
    };
    let (summary, meta) = list_import::run(&a.node, &a.input, &opts, &mut Bar::new(quiet))?;
    outln!("{} ({summary})", a.input.display());
    out!("{}", render::quality(&summary));
    for l in &meta.labels {
        outln!("{}", render::label(l));
    }
    if let Some(c) = &meta.canaries {
        outln!("{}", render::canaries(c));
    }
    outln!(
        "new epoch {}: distinct keys {}; it replaces the previous epoch",
        meta.id,
        text::counts(&meta.sizes, "")
    );
    Ok(())
}

pub(crate) fn serve(a: ServeArgs) -> Result<()> {
    runtime(None)?.block_on(async {
        let stop = stop_signal()?;
        let server = Server::bind(&a.node, a.listen)?;
        if let Some(w) = server.buffer_warning() {
            tracing::warn!("{w}");
        }
        let addr = server.local_addr()?;
        if let Some(path) = &a.addr_file {
            write_addr_file(path, addr)?;
        }
        // A closed standard output (a detached operator) must not stop the node.
        say(&format!(
            "listening on {addr} ({})",
            server.describe().await
        ));
        server.run(stop).await?;
        say("stopped");
        Ok(())
    })
}

/// Writes the address under a temporary name and renames it, so that a reader never sees
/// half of it.
fn write_addr_file(path: &Path, addr: std::net::SocketAddr) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    write_file(Path::new(&tmp), format!("{addr}\n"))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Resolves at SIGTERM or Ctrl-C. The handlers are installed before this returns, so a signal
/// that arrives right after start-up (say, once "listening" is printed) already stops cleanly.
fn stop_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

pub(crate) fn status(node: &Path) -> Result<()> {
    let node = NodeDir::open(node)?;
    let id = node.identity()?;
    outln!(
        "node {} ({}), certificate sha256 {}, valid until {}",
        id.me.name,
        id.me.role,
        id.me.fingerprint,
        identity::not_after(&id.cert).map_or_else(|_| "?".into(), clock::rfc3339)
    );
    if let Some(w) = identity::expiry_warning(&id, clock::now_unix()) {
        outln!("warning: {w}");
    }
    // The whole store is read and checked against its digest, as `serve` would.
    match node.store().read() {
        Ok(Some((_, m))) => outln!("{}", render::epoch(&m)),
        Ok(None) => outln!("no customer list imported"),
        // Not damage: a format this version no longer serves, and the message says what to do.
        Err(e @ StoreError::OldFormat { .. }) => outln!("epoch: {e}"),
        Err(e) => outln!("epoch: DAMAGED: {:#}", anyhow::Error::from(e)),
    }
    for c in suyuan_node::node_dir::published::list(&node)? {
        outln!(
            "published case {:?}: epoch {}, {} rows from {}, until {}{}",
            c.case,
            c.epoch,
            c.rows,
            c.source,
            suyuan_node::clock::rfc3339(c.expires),
            if c.allow.is_empty() {
                String::new()
            } else {
                format!(", for {}", c.allow.join(", "))
            }
        );
    }
    match id.crls.first().map(|der| revocation::crl_info(der)) {
        None => outln!("revocation list: none installed"),
        Some(Ok(info)) => {
            outln!(
                "revocation list: number {}, {} revoked, due {}",
                info.number,
                info.revoked,
                clock::rfc3339(info.next_update)
            );
            if let Some(w) = info.stale(clock::now_unix()) {
                outln!("warning: {w}");
            }
        }
        Some(Err(e)) => outln!("revocation list: unreadable: {e:#}"),
    }
    let cfg = node.config()?;
    outln!("policy: {}", cfg.policy.summary());
    let (sets, bytes) = node.tag_cache(cfg.query.tag_cache_bytes()).usage();
    outln!(
        "tag cache: {sets} kept set(s), {} of {} MiB",
        render::mib(bytes),
        cfg.query.tag_cache_mib
    );
    match node.audit().verify() {
        Ok(entries) => {
            outln!("audit log: {} entries, chain intact", entries.len());
            print_recent(&entries);
        }
        Err(e) => outln!("audit log: DAMAGED: {:#}", anyhow::Error::from(e)),
    }
    Ok(())
}

/// `status --json`: what `status` prints, as one JSON object (stable field names).
pub(crate) fn status_json(node: &Path) -> Result<()> {
    use serde_json::json;
    let node = NodeDir::open(node)?;
    let id = node.identity()?;
    let now = clock::now_unix();
    let not_after = identity::not_after(&id.cert).ok();
    let epoch = match node.store().read() {
        Ok(Some((_, m))) => json!({
            "id": m.id, "created": m.created, "keys": m.sizes, "rows": m.rows,
            "source": m.source, "verified": true,
        }),
        Ok(None) => serde_json::Value::Null,
        Err(e) => json!({ "error": format!("{:#}", anyhow::Error::from(e)) }),
    };
    let crl = match id.crls.first().map(|der| revocation::crl_info(der)) {
        None => serde_json::Value::Null,
        Some(Ok(i)) => json!({
            "number": i.number, "revoked": i.revoked, "next_update": i.next_update,
            "stale": i.stale(now).is_some(),
        }),
        Some(Err(e)) => json!({ "error": format!("{e:#}") }),
    };
    let cfg = node.config()?;
    let (sets, bytes) = node.tag_cache(cfg.query.tag_cache_bytes()).usage();
    let audit = match node.audit().verify() {
        Ok(entries) => json!({ "entries": entries.len(), "intact": true }),
        Err(e) => json!({ "intact": false, "error": format!("{:#}", anyhow::Error::from(e)) }),
    };
    let out = json!({
        "node": {
            "name": id.me.name, "role": id.me.role, "fingerprint": id.me.fingerprint,
            "key": id.me.key, "certificate_expires": not_after,
            "certificate_days_left": not_after.map(|t| t.saturating_sub(now) / 86_400),
            "warning": identity::expiry_warning(&id, now),
        },
        "epoch": epoch,
        "revocation_list": crl,
        "policy": cfg.policy.summary(),
        "tag_cache": { "sets": sets, "bytes": bytes, "limit_mib": cfg.query.tag_cache_mib },
        "audit_log": audit,
    });
    outln!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// The last ten audit entries, oldest first.
fn print_recent(entries: &[Entry]) {
    let from = entries.len().saturating_sub(10);
    if from < entries.len() {
        outln!("recent:");
        for e in &entries[from..] {
            outln!("{}", render::audit_line(e));
        }
    }
}

pub(crate) fn cache_clear(node: &Path) -> Result<()> {
    let (sets, bytes) = NodeDir::open(node)?.tag_cache(0).clear()?;
    outln!("removed {sets} kept tag set(s), {} MiB", render::mib(bytes));
    Ok(())
}

pub(crate) fn audit_verify(node: &Path) -> Result<()> {
    let entries = NodeDir::open(node)?
        .audit()
        .verify()
        .context("audit log verification failed")?;
    outln!("audit log intact: {} entries", entries.len());
    Ok(())
}

pub(crate) fn audit_show(node: &Path, json: bool) -> Result<()> {
    let entries = NodeDir::open(node)?.audit().verify()?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&entries)?);
    } else {
        for e in &entries {
            outln!("{}", render::audit_line(e));
        }
    }
    Ok(())
}

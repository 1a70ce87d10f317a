//! `suyuan bench --link RATE`: the holder and the querier in two network namespaces of the
//! bench's own, joined by a veth pair shaped with a token bucket (`tc qdisc ... tbf`) at RATE
//! each way, so the query crosses a link that is not loopback. Needs root, `ip` and `tc`
//! (iproute2). The namespaces exist only while the bench runs: deleting a namespace deletes its
//! end of the pair, and a guard deletes both whatever happens.

use std::process::Command;

use anyhow::{Context, Result, bail};

/// The holder's address inside its namespace (a /30 of the documentation-free 10/8).
pub const HOLDER_ADDR: &str = "10.77.0.1";
const QUERIER_ADDR: &str = "10.77.0.2";

/// A link's rate, in bits per second, as `tc` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate(pub u64);

impl Rate {
    /// `1gbit`, `100mbit`, `500kbit` (at least 1 Mbit/s: below that a query of any size takes
    /// hours).
    pub fn parse(s: &str) -> Result<Rate, String> {
        let lower = s.to_ascii_lowercase();
        let (digits, unit) = lower.split_at(
            lower
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(lower.len()),
        );
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("{s:?}: expected a rate such as 1gbit or 100mbit"))?;
        let scale = match unit {
            "gbit" => 1_000_000_000,
            "mbit" => 1_000_000,
            "kbit" => 1_000,
            _ => return Err(format!("{s:?}: expected a rate such as 1gbit or 100mbit")),
        };
        let bits = n.saturating_mul(scale);
        if bits < 1_000_000 {
            return Err(format!("{s:?}: a link of at least 1mbit"));
        }
        Ok(Rate(bits))
    }

    /// Seconds to carry `bytes` at this rate.
    pub fn seconds_for(self, bytes: u64) -> f64 {
        bytes as f64 * 8.0 / self.0 as f64
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            b if b % 1_000_000_000 == 0 => write!(f, "{}gbit", b / 1_000_000_000),
            b if b % 1_000_000 == 0 => write!(f, "{}mbit", b / 1_000_000),
            b => write!(f, "{}kbit", b / 1_000),
        }
    }
}

/// The two namespaces and the shaped pair between them; deleted on drop.
pub struct Link {
    /// The holder's namespace.
    pub holder_ns: String,
    /// The querier's namespace.
    pub querier_ns: String,
    /// The holder's end of the pair, by its name before it moved into its namespace.
    veth: String,
    /// The namespaces made so far (what dropping deletes).
    made: Vec<String>,
}

impl Link {
    /// Creates `suyuan-<pid>-h` and `suyuan-<pid>-q`, the pair, the addresses and the token
    /// buckets. The buffer of each bucket holds 50 ms at the rate (`latency 50ms`), its burst
    /// one timer tick's worth at 1000 Hz, at least 64 KiB.
    pub fn create(rate: Rate) -> Result<Link> {
        let pid = std::process::id();
        // Interface names are at most 15 bytes.
        let (hv, qv) = (format!("sy{pid}h"), format!("sy{pid}q"));
        // Made first, so that whatever step fails, dropping it removes what was created.
        let mut link = Link {
            holder_ns: format!("suyuan-{pid}-h"),
            querier_ns: format!("suyuan-{pid}-q"),
            veth: hv.clone(),
            made: Vec::new(),
        };
        for ns in [link.holder_ns.clone(), link.querier_ns.clone()] {
            ip(&["netns", "add", &ns])?;
            link.made.push(ns);
        }
        let (h, q) = (&link.holder_ns, &link.querier_ns);
        ip(&["link", "add", &hv, "type", "veth", "peer", "name", &qv])?;
        ip(&["link", "set", &hv, "netns", h])?;
        ip(&["link", "set", &qv, "netns", q])?;
        for (ns, dev, addr) in [(h, &hv, HOLDER_ADDR), (q, &qv, QUERIER_ADDR)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/30"), "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            let burst = (rate.0 / 8 / 1000).max(64 * 1024).to_string();
            let r = rate.0.to_string();
            let tbf = [
                "-n", ns, "qdisc", "add", "dev", dev, "root", "tbf", "rate", &r, "burst", &burst,
                "latency", "50ms",
            ];
            run("tc", &tbf)?;
        }
        Ok(link)
    }

    /// `ip netns exec NS`: the prefix that runs a command inside a namespace.
    pub fn exec_in(ns: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]);
        c
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // A pair not yet moved into the namespaces (a step failed) is in this one: remove it;
        // moved, it goes with its namespaces and this finds nothing.
        let _ = Command::new("ip")
            .args(["link", "delete", &self.veth])
            .stderr(std::process::Stdio::null())
            .status();
        for ns in &self.made {
            if let Err(e) = ip(&["netns", "delete", ns]) {
                tracing::warn!("could not delete network namespace {ns}: {e:#}");
            }
        }
    }
}

fn ip(args: &[&str]) -> Result<()> {
    run("ip", args)
}

fn run(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program} (iproute2 is needed for --link)"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {} (--link needs root)",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_print() {
        assert_eq!(Rate::parse("1gbit"), Ok(Rate(1_000_000_000)));
        assert_eq!(Rate::parse("100Mbit"), Ok(Rate(100_000_000)));
        assert_eq!(Rate(100_000_000).to_string(), "100mbit");
        assert_eq!(Rate(1_000_000_000).to_string(), "1gbit");
        assert!(Rate::parse("100").unwrap_err().contains("expected a rate"));
        assert!(
            Rate::parse("500kbit")
                .unwrap_err()
                .contains("at least 1mbit")
        );
        assert!(Rate::parse("fastmbit").is_err());
        assert!((Rate(100_000_000).seconds_for(12_500_000) - 1.0).abs() < 1e-9);
    }
}

//! The raw flags, as clap parses them. Every value that has a type is parsed into it here, so
//! a bad flag fails before anything runs, with clap's usual message.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use suyuan_node::evidence::directory::DEFAULT_DIRECTORY_DAYS;
use suyuan_node::lists::{InputOptions, LabelOption, parse_label, parse_override};
use suyuan_node::node_dir::identity::{DEFAULT_CERT_DAYS, Role};
use suyuan_node::node_dir::revocation::DEFAULT_CRL_DAYS;
use suyuan_node::query::{PeerSpec, html::DEFAULT_THRESHOLD, parse_peer};
use suyuan_node::tools::bench::MAX_HOLDERS;
use suyuan_protocol::ident::{Field, KeySelection, KeyType};
use suyuan_protocol::psi::{Blinding, QueryMode};

/// suyuan (溯源): private set intersection for tracing leaked personal records.
#[derive(Debug, Parser)]
#[command(name = "suyuan", version, about)]
pub(crate) struct Cli {
    /// No progress bars or step lines (results and errors are still printed).
    #[arg(long, global = true)]
    pub(crate) quiet: bool,
    /// Log what happens on stderr: -v for each query and connection, -vv for more. RUST_LOG
    /// (e.g. RUST_LOG=suyuan_node=debug) takes precedence.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// A whole federation on loopback: synthetic data, CA, four institutions, the police, a
    /// count and a matches query, checked against the ground truth, with an HTML report.
    Demo(DemoArgs),
    /// Measure the whole path: import, then a query over QUIC on 127.0.0.1 with holder and
    /// querier as separate processes, against the curve's floor measured in the same run.
    Bench(BenchArgs),
    /// Synthetic customer lists and a seized dump with ground truth (truth.json).
    Gen(GenArgs),
    /// Turn a JSON report of `suyuan query` into a self-contained HTML report.
    Report(ReportArgs),
    /// Check a JSON report with the federation CA certificate alone: the querier's signature
    /// on it, each holder's signed statement and answer, and every number against the signed one.
    Verify(VerifyArgs),
    /// The federation's certificate authority.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Import a customer list as the node's new epoch (fresh key; the old epoch is overwritten).
    Import(ImportArgs),
    /// Answer queries from the federation until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Query peers with a dump; print one row per peer and optionally write a JSON report.
    Query(QueryArgs),
    /// Inspect or verify the hash-chained audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Show the node's identity, epoch, policy and recent queries.
    Status(StatusArgs),
    /// The tag sets this node keeps from earlier queries (`[query] tag_cache_mib`).
    #[command(subcommand)]
    Cache(CacheCommand),
    /// The federation's certificate revocation list, on a node.
    #[command(subcommand)]
    Crl(CrlCommand),
    /// Canaries: identifiers an institution plants in one export, so that a dump holding them
    /// names the export.
    #[command(subcommand)]
    Canary(CanaryCommand),
    /// Run holder and querier in one process on two files (no network).
    PsiLocal(PsiLocalArgs),
    /// Warrants: a court's signed permission for one querier to ask one holder in one mode.
    #[command(subcommand)]
    Warrant(WarrantCommand),
    /// Publish a case's seized dump on this police node (its own key and store, destroyed at
    /// expiry), for institutions to find their exposed customers and other units to link
    /// seizures; or close a published case.
    Publish(PublishArgs),
    /// Check this node's own list against a dump a police node published: which of its own
    /// rows are in it (matches, written to --out), or how far two seizures overlap (count).
    Check(CheckArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum WarrantCommand {
    /// Sign a warrant with this court node's key: case, holder, mode, validity and legal
    /// basis, and optionally the signed count it is granted on.
    Issue(WarrantIssueArgs),
}

#[derive(Debug, Args)]
pub(crate) struct WarrantIssueArgs {
    /// The court's node directory (issued with --role court).
    #[arg(long)]
    pub(crate) node: PathBuf,
    /// The case it is granted in.
    #[arg(long = "case")]
    pub(crate) case: String,
    /// The holder it is addressed to.
    #[arg(long)]
    pub(crate) holder: String,
    /// The querier allowed to use it [default: the receipt's querier; without a receipt, any
    /// police node].
    #[arg(long)]
    pub(crate) querier: Option<String>,
    /// The mode it allows.
    #[arg(long, default_value = "matches", value_parser = mode())]
    pub(crate) mode: QueryMode,
    /// How long it is valid: 30d, 12h, or days.
    #[arg(long, value_parser = duration)]
    pub(crate) expires: u64,
    /// The legal basis, as text.
    #[arg(long)]
    pub(crate) basis: String,
    /// The querier's signed count report (`query --json`) the warrant is granted on: checked
    /// against the federation CA, and the holder's signed answer in it carried in the warrant.
    #[arg(long, value_name = "FILE")]
    pub(crate) receipt: Option<PathBuf>,
    /// Where to write the warrant.
    #[arg(long)]
    pub(crate) out: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct PublishArgs {
    /// The police node's directory.
    #[arg(long)]
    pub(crate) node: PathBuf,
    /// The case number it is published under.
    #[arg(
        long = "case",
        required_unless_present = "close",
        conflicts_with = "close"
    )]
    pub(crate) case: Option<String>,
    /// The seized dump (CSV or TSV, UTF-8 or GB18030).
    #[arg(long, required_unless_present = "close", conflicts_with = "close")]
    pub(crate) input: Option<PathBuf>,
    /// How long it stays published: 90d, 12h, or days.
    #[arg(long, default_value = "90d", value_parser = duration)]
    pub(crate) expires: u64,
    /// Only these members may check it (repeat); default: every member the policy admits.
    #[arg(long = "allow", value_name = "NAME")]
    pub(crate) allow: Vec<String>,
    /// Destroy the published case CASE now (its key and store are overwritten).
    #[arg(long, value_name = "CASE")]
    pub(crate) close: Option<String>,
    #[command(flatten)]
    pub(crate) input_args: InputArgs,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// This node's directory (an institution, or a police unit linking its own seizure).
    #[arg(long)]
    pub(crate) node: PathBuf,
    /// The published case to check against.
    #[arg(long = "case")]
    pub(crate) case: String,
    /// The police node that published it: NAME=HOST:PORT.
    #[arg(long = "peer", value_name = "NAME=HOST:PORT", value_parser = peer)]
    pub(crate) peer: PeerSpec,
    /// This node's own list (CSV or TSV, UTF-8, GB18030 or UTF-16).
    #[arg(long)]
    pub(crate) input: PathBuf,
    /// matches: which of its rows are in the dump; count: how far the two overlap.
    #[arg(long, default_value = "matches", value_parser = mode())]
    pub(crate) mode: QueryMode,
    /// matches: write the exposed rows here (the input's own columns and encoding, a 1-based
    /// `row` column first; readable by this user only).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// Write a self-contained HTML report here.
    #[arg(long)]
    pub(crate) html: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) input_args: InputArgs,
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Directory for everything (default: a new one under the system temp directory).
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// Rows of the seized dump (the population is five times as many).
    #[arg(long, default_value_t = 20_000)]
    pub(crate) rows: u64,
}

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Rows of the holder's list (one mobile number each).
    #[arg(long, default_value_t = 100_000)]
    pub(crate) holder_rows: u64,
    /// Rows of the dump (one mobile number each).
    #[arg(long, default_value_t = 100_000)]
    pub(crate) dump_rows: u64,
    /// Share of dump rows that are the holder's customers.
    #[arg(long, default_value_t = 0.5, value_parser = share)]
    pub(crate) overlap: f64,
    /// count or matches.
    #[arg(long, default_value = "count", value_parser = mode())]
    pub(crate) mode: QueryMode,
    /// How to blind the dump: additive (matches mode only) or multiplicative (default: additive
    /// in matches mode, multiplicative in count mode, as `suyuan query` does).
    #[arg(long, value_parser = blinding())]
    pub(crate) blinding: Option<Blinding>,
    /// Threads per process (default: every core).
    #[arg(long, value_parser = at_least_one)]
    pub(crate) threads: Option<usize>,
    /// Write the figures as JSON here.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// Working directory (default: a new one under the temp directory).
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// Load: run this many queries (separate processes) against the holder at once.
    #[arg(long, default_value_t = 1)]
    pub(crate) concurrent: usize,
    /// Load: querier identities the concurrent queries come from (default: up to 4).
    #[arg(long)]
    pub(crate) queriers: Option<usize>,
    /// Run the query a second time, with the tag set kept from the first.
    #[arg(long)]
    pub(crate) repeat: bool,
    /// Query this many holders at once (each its own process and key, the same list): the
    /// dump is read and blinded once for all of them.
    #[arg(long, default_value_t = 1, value_parser = holders)]
    pub(crate) holders: usize,
    /// Put the holders and the querier in two network namespaces of the bench's own, joined by
    /// a link shaped to this rate each way (e.g. 1gbit, 100mbit). Needs root, ip and tc.
    #[arg(long, value_parser = suyuan_node::tools::bench::link::Rate::parse)]
    pub(crate) link: Option<suyuan_node::tools::bench::link::Rate>,
    /// Internal to --link: this bench runs in the querier's namespace, the holders in this one.
    #[arg(long, hide = true, requires = "link")]
    pub(crate) holder_netns: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct GenArgs {
    /// Output directory.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Seed: the same seed gives the same files, byte for byte.
    #[arg(long, default_value_t = 2019)]
    pub(crate) seed: u64,
    /// Rows of the dump (default 20000 × scale).
    #[arg(long)]
    pub(crate) dump_rows: Option<u64>,
    /// Size of the population the lists draw from (default 100000 × scale).
    #[arg(long)]
    pub(crate) population: Option<u64>,
    /// Multiplies the default sizes (e.g. 100 for a 2-million-row dump).
    #[arg(long, default_value_t = 1.0, value_parser = positive)]
    pub(crate) scale: f64,
}

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// The JSON report.
    #[arg(long)]
    pub(crate) json: PathBuf,
    /// Where to write the HTML.
    #[arg(long)]
    pub(crate) html: PathBuf,
    /// Flag institutions with at least this many matched records.
    #[arg(long, default_value_t = DEFAULT_THRESHOLD)]
    pub(crate) threshold: u64,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The JSON report of `suyuan query`.
    pub(crate) report: PathBuf,
    /// The federation CA certificate (`ca.crt`).
    #[arg(long)]
    pub(crate) ca: PathBuf,
    /// Also recompute every answer from the query's evidence (`suyuan query --evidence`) and
    /// the dump (--input, read as the query read it).
    #[arg(long, value_name = "FILE", requires = "input")]
    pub(crate) evidence: Option<PathBuf>,
    /// With --evidence: the dump the query was made of.
    #[arg(long, requires = "evidence")]
    pub(crate) input: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) input_args: InputArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CaCommand {
    /// Create a federation CA in a new directory.
    Init {
        /// Directory to create (must not exist or be empty).
        #[arg(long)]
        dir: PathBuf,
        /// The CA's name.
        #[arg(long, default_value = "suyuan federation CA")]
        name: String,
    },
    /// Issue a node identity (certificate binding name and role) into a new node directory.
    Issue {
        /// The CA directory.
        #[arg(long)]
        ca: PathBuf,
        /// Node name: lower-case letters, digits, hyphens.
        #[arg(long)]
        name: String,
        /// institution, police, researcher or court.
        #[arg(long, value_parser = role())]
        role: Role,
        /// The node directory to create.
        #[arg(long)]
        out: PathBuf,
        /// Days the certificate is valid for.
        #[arg(long, default_value_t = DEFAULT_CERT_DAYS)]
        days: u32,
    },
    /// A new certificate for an existing node: the same name, role and key (which never leaves
    /// the node); the old one is kept as node.crt.previous. A running serve uses it within a
    /// second.
    Renew {
        /// The CA directory.
        #[arg(long)]
        ca: PathBuf,
        /// The node directory (only its node.crt is read and replaced).
        #[arg(long)]
        node: PathBuf,
        /// Days the new certificate is valid for.
        #[arg(long, default_value_t = DEFAULT_CERT_DAYS)]
        days: u32,
    },
    /// Sign a federation directory (name, role, address and key of each member) that queriers
    /// use with --directory.
    Directory {
        /// The CA directory.
        #[arg(long)]
        ca: PathBuf,
        /// A member: NAME=HOST:PORT (repeat); its role and key come from its certificate.
        #[arg(long = "add", value_name = "NAME=HOST:PORT", required = true, value_parser = peer)]
        add: Vec<PeerSpec>,
        /// Days the directory is current for.
        #[arg(long, default_value_t = DEFAULT_DIRECTORY_DAYS)]
        days: u32,
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
    },
    /// Revoke a member's certificate (a stolen key, a member leaving) and sign a new
    /// revocation list (`CA/crl.pem`) to install on every node.
    Revoke {
        /// The CA directory.
        #[arg(long)]
        ca: PathBuf,
        /// The member's node name.
        #[arg(long)]
        name: String,
        /// Why, as the record and every refusal will say it.
        #[arg(long)]
        reason: String,
        /// The member's node.crt, for a certificate this CA issued before it kept copies.
        #[arg(long)]
        cert: Option<PathBuf>,
        /// Days until the list is due to be replaced.
        #[arg(long, default_value_t = DEFAULT_CRL_DAYS)]
        days: u32,
    },
    /// Sign a current revocation list (the next number, a new due date) and write it out.
    Crl {
        /// The CA directory.
        #[arg(long)]
        ca: PathBuf,
        /// Where to write it (it is also kept as CA/crl.pem).
        #[arg(long)]
        out: PathBuf,
        /// Days until the list is due to be replaced.
        #[arg(long, default_value_t = DEFAULT_CRL_DAYS)]
        days: u32,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum CrlCommand {
    /// Install the CA's revocation list in a node; a running `serve` applies it within a
    /// second (or at SIGHUP), and every query from then on.
    Install {
        /// The node directory.
        #[arg(long)]
        node: PathBuf,
        /// The list (`crl.pem` from `suyuan ca revoke` or `suyuan ca crl`).
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The node directory.
    #[arg(long)]
    pub(crate) node: PathBuf,
    /// The same facts as one JSON object, for scripts.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct NodeArg {
    /// The node directory.
    #[arg(long)]
    pub(crate) node: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct InputArgs {
    /// Override a detected column: FIELD=HEADER (e.g. mobile=手机号码). Fields: name, mobile,
    /// resident_id, bank_card, email, birthdate, address.
    #[arg(long = "column", value_name = "FIELD=HEADER", value_parser = column)]
    pub(crate) columns: Vec<(Field, String)>,
    /// Key types: "strong" (mobile, resident_id, bank_card, email), "all", or a list.
    #[arg(long, default_value = "strong", value_parser = keys)]
    pub(crate) keys: KeySelection,
}

impl InputArgs {
    /// How to read the file: these columns and key types, no labels or canaries.
    pub(crate) fn options(self) -> InputOptions {
        InputOptions {
            overrides: self.columns,
            selection: self.keys,
            ..InputOptions::default()
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The node directory.
    #[arg(long)]
    pub(crate) node: PathBuf,
    /// The customer list (CSV or TSV, UTF-8 or GB18030).
    #[arg(long)]
    pub(crate) input: PathBuf,
    #[command(flatten)]
    pub(crate) input_args: InputArgs,
    /// Attach a label to each record from one of its columns: NAME=HEADER (e.g.
    /// branch=开户网点), or NAME=HEADER:month to keep the month YYYY-MM of a date column.
    /// Up to 8.
    #[arg(long = "label", value_name = "NAME=HEADER[:month]", value_parser = label)]
    pub(crate) labels: Vec<LabelOption>,
    /// Records planted in exports (`suyuan canary mint` writes them): identifier columns and an
    /// `export` column. Held with the label canary = EXPORT, offered to every querier that asks
    /// for labels and never suppressed; not among the list's rows.
    #[arg(long, value_name = "FILE")]
    pub(crate) canaries: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The node directory.
    #[arg(long)]
    pub(crate) node: PathBuf,
    /// Address to listen on (default: node.toml's network.listen).
    #[arg(long)]
    pub(crate) listen: Option<SocketAddr>,
    /// Once listening, write the bound address (HOST:PORT and a newline) to this file, for
    /// scripts that start a node on port 0.
    #[arg(long, value_name = "FILE")]
    pub(crate) addr_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct QueryArgs {
    /// The node directory (a police or researcher node).
    #[arg(long)]
    pub(crate) node: PathBuf,
    /// The dump (CSV or TSV, UTF-8 or GB18030).
    #[arg(long)]
    pub(crate) input: PathBuf,
    /// A peer to ask: NAME=HOST:PORT, or NAME with --directory (repeat for several; asked
    /// concurrently).
    #[arg(long = "peer", value_name = "NAME=HOST:PORT")]
    pub(crate) peers: Vec<String>,
    /// The federation directory signed by the CA (`suyuan ca directory`): members by name.
    #[arg(long, value_name = "FILE")]
    pub(crate) directory: Option<PathBuf>,
    /// Ask every institution the directory lists.
    #[arg(long, requires = "directory")]
    pub(crate) all_institutions: bool,
    /// count: how many keys matched, per type; matches: which dump rows matched.
    #[arg(long, value_parser = mode())]
    pub(crate) mode: QueryMode,
    /// The case number, recorded in every audit log.
    #[arg(long = "case")]
    pub(crate) case: Option<String>,
    /// Write the JSON report here.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// Write a self-contained HTML report here.
    #[arg(long)]
    pub(crate) html: Option<PathBuf>,
    /// With --html: flag institutions with at least this many matched records.
    #[arg(long, default_value_t = DEFAULT_THRESHOLD)]
    pub(crate) threshold: u64,
    /// The number of people the dump could have been drawn from, to tell a source from a
    /// large list that shares people by chance [default: 1410000000, China's population]
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) population: Option<u64>,
    /// Write the query's evidence here (its blind and every holder's messages; secret, about
    /// 32 bytes per dump key per holder), for `suyuan verify --evidence`.
    #[arg(long, value_name = "FILE")]
    pub(crate) evidence: Option<PathBuf>,
    /// Ask each holder for the labels of the matched keys (branch, opening month...) that its
    /// policy shows this node: per value in count mode, per matched row in matches mode.
    #[arg(long)]
    pub(crate) labels: bool,
    /// A court's warrant for one holder (`suyuan warrant issue`), sent in the hello; repeat,
    /// one per holder.
    #[arg(long = "warrant", value_name = "FILE")]
    pub(crate) warrants: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) input_args: InputArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CanaryCommand {
    /// Mint canaries the institution controls: e-mail addresses at its domain, or mobile
    /// numbers in a range it owns (never resident IDs or bank cards: a made-up one may be a
    /// real person's).
    Mint(MintArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("kind").required(true).args(["email_domain", "mobile_range", "resident_id", "bank_card"])))]
pub(crate) struct MintArgs {
    /// The export the canaries go into (a partner file, an outsourcer's copy, a branch's
    /// extract), as it will be reported when one reaches a dump.
    #[arg(long)]
    pub(crate) export: String,
    /// How many.
    #[arg(long)]
    pub(crate) count: u64,
    /// E-mail addresses RANDOM@DOMAIN, at a domain the institution controls.
    #[arg(long, value_name = "DOMAIN")]
    pub(crate) email_domain: Option<String>,
    /// Mobile numbers PREFIX + random digits, in a range the institution owns (3 to 10 leading
    /// digits, e.g. 1700000).
    #[arg(long, value_name = "PREFIX")]
    pub(crate) mobile_range: Option<String>,
    /// Refused, with the reason.
    #[arg(long)]
    pub(crate) resident_id: bool,
    /// Refused, with the reason.
    #[arg(long)]
    pub(crate) bank_card: bool,
    /// The list to write (CSV: export, then the identifier; mode 0600; must not exist).
    #[arg(long)]
    pub(crate) out: PathBuf,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CacheCommand {
    /// Delete every kept tag set; the next query to each holder downloads its tags again.
    Clear(NodeArg),
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Check the hash chain; name the first edited, deleted or reordered entry.
    Verify(NodeArg),
    /// Print the entries (after verifying them).
    Show {
        /// The node directory.
        #[arg(long)]
        node: PathBuf,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct PsiLocalArgs {
    /// The holder's customer list (CSV or TSV).
    #[arg(long)]
    pub(crate) holder: PathBuf,
    /// The querier's dump (CSV or TSV).
    #[arg(long)]
    pub(crate) querier: PathBuf,
    /// count: how many keys matched, per type; matches: which dump rows matched.
    #[arg(long, value_parser = mode())]
    pub(crate) mode: QueryMode,
    /// Override a detected column of the holder file: FIELD=HEADER (e.g. mobile=手机号码).
    #[arg(long = "holder-column", value_name = "FIELD=HEADER", value_parser = column)]
    pub(crate) holder_columns: Vec<(Field, String)>,
    /// Override a detected column of the dump: FIELD=HEADER.
    #[arg(long = "querier-column", value_name = "FIELD=HEADER", value_parser = column)]
    pub(crate) querier_columns: Vec<(Field, String)>,
    /// Key types to match: "strong" (mobile, resident_id, bank_card, email), "all", or a
    /// comma-separated list (e.g. mobile,name_birthdate).
    #[arg(long, default_value = "strong", value_parser = keys)]
    pub(crate) keys: KeySelection,
}

// ---- value parsers: clap shows their error after "invalid value '...' for '--flag'" ----

fn blinding() -> impl TypedValueParser<Value = Blinding> {
    PossibleValuesParser::new(["multiplicative", "additive"]).try_map(|s| s.parse::<Blinding>())
}

fn mode() -> impl TypedValueParser<Value = QueryMode> {
    PossibleValuesParser::new(["count", "matches"]).try_map(|s| s.parse::<QueryMode>())
}

fn role() -> impl TypedValueParser<Value = Role> {
    PossibleValuesParser::new(Role::ALL.map(Role::as_str)).try_map(|s| s.parse::<Role>())
}

/// The library's message without its own "--flag \"value\": " prefix, which clap already gives.
fn explain(flag: &str, s: &str, e: &anyhow::Error) -> String {
    let full = format!("{e:#}");
    let prefix = format!("{flag} {s:?}: ");
    full.strip_prefix(&prefix).unwrap_or(&full).to_string()
}

fn peer(s: &str) -> Result<PeerSpec, String> {
    parse_peer(s).map_err(|e| explain("--peer", s, &e))
}

fn label(s: &str) -> Result<LabelOption, String> {
    parse_label(s).map_err(|e| format!("{e:#}"))
}

fn column(s: &str) -> Result<(Field, String), String> {
    parse_override(s).map_err(|e| explain("--column", s, &e))
}

fn keys(s: &str) -> Result<KeySelection, String> {
    match s {
        "strong" => Ok(KeySelection::strong()),
        "all" => Ok(KeySelection::all()),
        list => {
            let types = list
                .split(',')
                .map(|t| t.trim().parse::<KeyType>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            Ok(KeySelection::only(&types))
        }
    }
}

/// `30d`, `12h`, or a number of days, in seconds (at least an hour, at most ten years).
fn duration(s: &str) -> Result<u64, String> {
    let (n, unit) = match s.strip_suffix('d') {
        Some(n) => (n, 86_400),
        None => match s.strip_suffix('h') {
            Some(n) => (n, 3_600),
            None => (s, 86_400),
        },
    };
    match n.parse::<u64>() {
        Ok(n) if n >= 1 && n.saturating_mul(unit) <= 3650 * 86_400 => Ok(n * unit),
        _ => Err("expected a duration such as 30d or 12h (at least 1h, at most 3650d)".into()),
    }
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("expected a whole number of at least 1".to_string()),
    }
}

fn holders(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=MAX_HOLDERS).contains(&n) => Ok(n),
        _ => Err(format!("expected a whole number from 1 to {MAX_HOLDERS}")),
    }
}

fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x > 0.0 && x.is_finite() => Ok(x),
        _ => Err("expected a positive number".to_string()),
    }
}

fn share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err("expected a number from 0 to 1".to_string()),
    }
}

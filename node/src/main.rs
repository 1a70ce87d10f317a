//! `suyuan`: the command-line front of suyuan-node.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};
use suyuan_node::input::{InputOptions, parse_override};
use suyuan_node::psi_local::{self, PsiLocalConfig};
use suyuan_protocol::ident::{Field, KeySelection, KeyType};
use suyuan_protocol::psi::QueryMode;

/// suyuan (溯源): private set intersection for tracing leaked personal records.
#[derive(Debug, Parser)]
#[command(name = "suyuan", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run holder and querier in one process on two files (no network).
    PsiLocal(PsiLocalArgs),
}

#[derive(Debug, clap::Args)]
struct PsiLocalArgs {
    /// The holder's customer list (CSV or TSV).
    #[arg(long)]
    holder: PathBuf,
    /// The querier's dump (CSV or TSV).
    #[arg(long)]
    querier: PathBuf,
    /// count: how many keys matched, per type; matches: which dump rows matched.
    #[arg(long, value_parser = ["count", "matches"])]
    mode: String,
    /// Override a detected column of the holder file: FIELD=HEADER (e.g. mobile=手机号码).
    #[arg(long = "holder-column", value_name = "FIELD=HEADER")]
    holder_columns: Vec<String>,
    /// Override a detected column of the dump: FIELD=HEADER.
    #[arg(long = "querier-column", value_name = "FIELD=HEADER")]
    querier_columns: Vec<String>,
    /// Key types to match: "strong" (mobile, resident_id, bank_card, email), "all", or a
    /// comma-separated list (e.g. mobile,name_birthdate).
    #[arg(long, default_value = "strong")]
    keys: String,
}

fn selection(s: &str) -> Result<KeySelection> {
    match s {
        "strong" => Ok(KeySelection::strong()),
        "all" => Ok(KeySelection::all()),
        list => {
            let types = list
                .split(',')
                .map(|t| t.trim().parse::<KeyType>())
                .collect::<Result<Vec<_>, _>>()?;
            if types.is_empty() {
                bail!("--keys: no key type given");
            }
            Ok(KeySelection::only(&types))
        }
    }
}

fn overrides(raw: &[String]) -> Result<Vec<(Field, String)>> {
    raw.iter().map(|s| parse_override(s)).collect()
}

impl PsiLocalArgs {
    fn into_config(self) -> Result<PsiLocalConfig> {
        let selection = selection(&self.keys)?;
        let mode: QueryMode = self.mode.parse().map_err(anyhow::Error::msg)?;
        Ok(PsiLocalConfig {
            holder: self.holder,
            holder_input: InputOptions {
                overrides: overrides(&self.holder_columns)?,
                selection: selection.clone(),
            },
            querier: self.querier,
            querier_input: InputOptions {
                overrides: overrides(&self.querier_columns)?,
                selection,
            },
            mode,
        })
    }
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::PsiLocal(args) => {
            let cfg = args.into_config()?;
            let report = psi_local::run(&cfg, &mut rand::rng())?;
            print!("{}", psi_local::render(&cfg, &report));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("suyuan: {e:#}");
            ExitCode::FAILURE
        }
    }
}

//! `suyuan gen`: synthetic customer lists and a seized dump with known ground truth.
//!
//! A population of persons (`0..population`) is drawn deterministically from the seed; each
//! institution's customers are a deterministic subset of it, each holding some of the person's
//! identifiers; strangers (`population..2·population`) belong to no list. The dump takes its rows
//! from known sources (by default 60% the telecom, 25% the bank, the rest strangers), writes them
//! the messy ways dumps write them, and `truth.json` says what a correct system must find.
//! Everything streams: no list or dump is ever held in memory.

mod person;
mod rng;
mod tables;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use suyuan_protocol::ident::KeyType;

use crate::Progress;
use person::{People, Person, id_check};
use rng::Stream;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenConfig {
    /// The seed: the same seed gives the same files, byte for byte.
    pub seed: u64,
    /// Persons who may be customers.
    pub population: u64,
    /// Rows of the dump.
    pub dump_rows: u64,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 2019,
            population: 100_000,
            dump_rows: 20_000,
        }
    }
}

/// The identifier fields an institution may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ident {
    Mobile,
    ResidentId,
    BankCard,
}

const IDS: [Ident; 3] = [Ident::Mobile, Ident::ResidentId, Ident::BankCard];

impl Ident {
    fn key_type(self) -> KeyType {
        match self {
            Ident::Mobile => KeyType::Mobile,
            Ident::ResidentId => KeyType::ResidentId,
            Ident::BankCard => KeyType::BankCard,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Utf8,
    Utf8Bom,
    Gb18030,
}

/// One institution: who its customers are and how it writes its list.
#[derive(Debug)]
struct Institution {
    name: &'static str,
    file: &'static str,
    /// Share of the population that are customers.
    share: f64,
    /// Probability that it holds each identifier of a customer.
    holds: [f64; 3],
    encoding: Encoding,
    delimiter: char,
    headers: &'static [&'static str],
}

const INSTITUTIONS: [Institution; 4] = [
    Institution {
        name: "bank",
        file: "bank.csv",
        share: 0.30,
        holds: [0.95, 1.0, 1.0],
        encoding: Encoding::Utf8,
        delimiter: ',',
        headers: &[
            "客户姓名",
            "手机号码",
            "证件号码",
            "银行卡号",
            "开户网点",
            "开户日期",
        ],
    },
    Institution {
        name: "telecom",
        file: "telecom.tsv",
        share: 0.50,
        holds: [1.0, 0.6, 0.0],
        encoding: Encoding::Gb18030,
        delimiter: '\t',
        headers: &["用户名", "联系电话", "证件号码", "套餐"],
    },
    Institution {
        name: "courier",
        file: "courier.csv",
        share: 0.20,
        holds: [1.0, 0.0, 0.0],
        encoding: Encoding::Utf8Bom,
        delimiter: ',',
        headers: &["收件人", "收件人电话", "收货地址"],
    },
    Institution {
        name: "hospital",
        file: "hospital.csv",
        share: 0.15,
        holds: [0.8, 1.0, 0.0],
        encoding: Encoding::Gb18030,
        delimiter: ',',
        headers: &["患者姓名", "身份证号", "联系电话", "就诊科室"],
    },
];

/// Where dump rows come from: (institution index or none, share).
const SOURCES: [(Option<usize>, f64); 3] = [(Some(1), 0.60), (Some(0), 0.25), (None, 0.15)];
/// The bank's leak: an insider at one branch sold a copy of its records taken before a month.
/// Of the bank's rows in the dump, this share are customers of the insider's branch
/// (`tables::BRANCHES[0]`); the rest any customer the insider could look up. None opened an
/// account in or after the copy's month.
const LEAK_FROM_BRANCH: f64 = 0.7;
/// Opening months run from 2005-01 (0) to 2020-12 (`OPENING_MONTHS` − 1).
const OPENING_MONTHS: u64 = 192;
/// The month the copy was taken: 2019-01.
const COPIED_MONTH: u64 = 168;
/// Share of the bank's opening dates written so that they cannot be read.
const UNREADABLE_DATES: f64 = 0.004;

/// The bank's partner exports, each carrying `CANARIES_PER_EXPORT` planted mobile numbers in
/// a range the bank owns (`1700000` + the export's digit + three digits). The first export's
/// copy reached the dump: its last `CANARY_ROWS` rows are that export's first canaries.
const EXPORTS: [&str; 3] = [
    "快递合作方导出-2018-06",
    "催收外包导出-2018-09",
    "营销外包导出-2018-11",
];
const CANARIES_PER_EXPORT: u64 = 20;
const CANARY_ROWS: u64 = 3;
/// The bank's canary file.
pub const CANARY_FILE: &str = "bank-canaries.csv";

fn canary_mobile(export: usize, n: u64) -> String {
    format!("1700000{export}{n:03}")
}

/// `YYYY-MM` of an opening-month index.
fn month_name(m: u64) -> String {
    format!("{}-{:02}", 2005 + m / 12, m % 12 + 1)
}

/// Share of dump rows that are junk (invalid identifiers only).
const JUNK: f64 = 0.02;
/// Share of dump rows that repeat a recent person.
const DUPLICATES: f64 = 0.05;

/// The ground truth for one institution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstitutionTruth {
    /// Node name.
    pub name: String,
    /// Its customer list.
    pub file: String,
    /// Rows of the list.
    pub rows: u64,
    /// Distinct keys of the list per type.
    pub keys: BTreeMap<KeyType, u64>,
    /// Dump rows that share a key with this list (1-based data rows).
    pub matched_rows: Vec<u64>,
    /// Distinct dump keys per type that this list holds.
    pub matched_keys: BTreeMap<KeyType, u64>,
    /// Rows of this list (1-based data rows) that share a key with the dump: what the
    /// institution learns by checking the published dump (`suyuan check`).
    #[serde(default)]
    pub exposed_rows: Vec<u64>,
}

/// What the dump is made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpTruth {
    /// The dump file.
    pub file: String,
    /// Data rows.
    pub rows: u64,
    /// Rows with no valid identifier at all.
    pub junk_rows: u64,
    /// Rows repeating an earlier person.
    pub duplicate_rows: u64,
    /// Rows by source ("telecom", "bank", "nobody").
    pub sources: BTreeMap<String, u64>,
    /// Distinct valid keys per type.
    pub keys: BTreeMap<KeyType, u64>,
}

/// Where the bank's part of the dump leaked from: a label value, and the month the copy was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeakTruth {
    /// The institution.
    pub institution: String,
    /// The label naming the branch.
    pub label: String,
    /// The insider's branch.
    pub value: String,
    /// The month label of the opening date.
    pub month_label: String,
    /// The copy's month: no leaked customer opened an account in or after it.
    pub copied: String,
    /// The export whose canaries are in the dump.
    pub canary_export: String,
    /// Its canaries in the dump (distinct keys).
    pub canary_keys: u64,
    /// The bank's canary file.
    pub canary_file: String,
}

/// `truth.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truth {
    /// The seed used.
    pub seed: u64,
    /// The population size.
    pub population: u64,
    /// The dump.
    pub dump: DumpTruth,
    /// Per institution, in the order of the files.
    pub institutions: Vec<InstitutionTruth>,
    /// The bank's leak.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leak: Option<LeakTruth>,
}

/// File name of the dump.
pub const DUMP_FILE: &str = "dump.csv";
/// File name of the truth.
pub const TRUTH_FILE: &str = "truth.json";

struct World {
    seed: u64,
    population: u64,
    people: People,
}

impl World {
    fn member(&self, k: usize, i: u64) -> bool {
        i < self.population
            && Stream::new(self.seed, 100 + k as u64, i).chance(INSTITUTIONS[k].share)
    }

    fn holds(&self, k: usize, id: Ident, i: u64) -> bool {
        let p = INSTITUTIONS[k].holds[id as usize];
        self.member(k, i) && Stream::new(self.seed, 200 + 10 * k as u64 + id as u64, i).chance(p)
    }

    /// A random customer of institution `k` (by rejection; shares are large). The bank's are
    /// the leak's: opened before the copy, mostly at the insider's branch.
    fn customer_of(&self, k: usize, s: &mut Stream) -> u64 {
        let from_branch = k == 0 && s.chance(LEAK_FROM_BRANCH);
        loop {
            let i = s.below(self.population);
            let leaked =
                k != 0 || (self.opened(i) < COPIED_MONTH && (!from_branch || self.branch(i) == 0));
            if self.member(k, i) && leaked {
                return i;
            }
        }
    }

    /// The bank branch of person `i` (an index of `tables::BRANCHES`).
    fn branch(&self, i: u64) -> usize {
        let cumulative = tables::cumulative(tables::BRANCHES);
        Stream::new(self.seed, 500, i).weighted(&cumulative)
    }

    /// The month person `i` opened a bank account (0 = 2005-01).
    fn opened(&self, i: u64) -> u64 {
        Stream::new(self.seed, 501, i).below(OPENING_MONTHS)
    }
}

/// A set of person indices, one bit each.
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: u64) -> Self {
        Bits(vec![0; n.div_ceil(64) as usize])
    }
    fn insert(&mut self, i: u64) {
        self.0[(i / 64) as usize] |= 1 << (i % 64);
    }
    fn contains(&self, i: u64) -> bool {
        self.0
            .get((i / 64) as usize)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
    fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &bits)| {
            (0..64)
                .filter(move |b| bits & (1 << b) != 0)
                .map(move |b| w as u64 * 64 + b)
        })
    }
}

fn open(path: &Path, encoding: Encoding) -> Result<Sink> {
    let f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    if encoding == Encoding::Utf8Bom {
        w.write_all(b"\xEF\xBB\xBF")?;
    }
    Ok(Sink { w, encoding })
}

struct Sink {
    w: BufWriter<File>,
    encoding: Encoding,
}

impl Sink {
    fn line(&mut self, cells: &[&str], delimiter: char) -> Result<()> {
        let mut s = cells.join(&delimiter.to_string());
        s.push('\n');
        match self.encoding {
            Encoding::Gb18030 => self.w.write_all(&encoding_rs::GB18030.encode(&s).0)?,
            _ => self.w.write_all(s.as_bytes())?,
        }
        Ok(())
    }
    fn finish(mut self) -> Result<()> {
        self.w.flush()?;
        self.w.get_ref().sync_all()?;
        Ok(())
    }
}

fn pick<'a>(s: &mut Stream, items: &[&'a str]) -> &'a str {
    items[s.below(items.len() as u64) as usize]
}

/// Writes the lists, the dump and `truth.json` into `out`; returns the truth.
pub fn generate(out: &Path, cfg: &GenConfig, progress: &mut dyn Progress) -> Result<Truth> {
    if cfg.population == 0 || cfg.dump_rows == 0 {
        bail!("population and dump rows must be at least 1");
    }
    if 2 * cfg.population > People::max_capacity() {
        bail!(
            "population too large (at most {})",
            People::max_capacity() / 2
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let world = World {
        seed: cfg.seed,
        population: cfg.population,
        people: People::new(cfg.seed, 2 * cfg.population),
    };
    progress.start(
        "gen",
        Some(cfg.population * INSTITUTIONS.len() as u64 + cfg.dump_rows),
    );
    let mut truths = Vec::new();
    for k in 0..INSTITUTIONS.len() {
        truths.push(write_list(out, &world, k, progress)?);
    }
    write_canaries(out)?;
    // The bank holds its canaries like any record: they are among its keys, not its rows.
    *truths[0].keys.entry(KeyType::Mobile).or_insert(0) +=
        CANARIES_PER_EXPORT * EXPORTS.len() as u64;
    let dump = write_dump(out, &world, cfg, &mut truths, progress)?;
    progress.finish();
    let truth = Truth {
        seed: cfg.seed,
        population: cfg.population,
        dump,
        institutions: truths,
        leak: Some(LeakTruth {
            institution: INSTITUTIONS[0].name.to_string(),
            label: "branch".to_string(),
            value: tables::BRANCHES[0].0.to_string(),
            month_label: "opened".to_string(),
            copied: month_name(COPIED_MONTH),
            canary_export: EXPORTS[0].to_string(),
            canary_keys: CANARY_ROWS,
            canary_file: CANARY_FILE.to_string(),
        }),
    };
    let f = File::create(out.join(TRUTH_FILE))?;
    serde_json::to_writer_pretty(BufWriter::new(f), &truth)?;
    Ok(truth)
}

/// Institution `k`'s customer list; its truth, without the dump's matches yet.
fn write_list(
    out: &Path,
    world: &World,
    k: usize,
    progress: &mut dyn Progress,
) -> Result<InstitutionTruth> {
    let inst = &INSTITUTIONS[k];
    let mut sink = open(&out.join(inst.file), inst.encoding)?;
    sink.line(inst.headers, inst.delimiter)?;
    let mut rows = 0u64;
    let mut keys: BTreeMap<KeyType, u64> = BTreeMap::new();
    for i in 0..world.population {
        progress.set(k as u64 * world.population + i + 1);
        if !world.member(k, i) {
            continue;
        }
        for id in IDS {
            if world.holds(k, id, i) {
                *keys.entry(id.key_type()).or_insert(0) += 1;
            }
        }
        let cells = list_row(world, k, i);
        let cells: Vec<&str> = cells.iter().map(String::as_str).collect();
        sink.line(&cells, inst.delimiter)?;
        rows += 1;
    }
    sink.finish()?;
    Ok(InstitutionTruth {
        name: inst.name.to_string(),
        file: inst.file.to_string(),
        rows,
        keys,
        matched_rows: Vec::new(),
        matched_keys: BTreeMap::new(),
        exposed_rows: Vec::new(),
    })
}

/// Customer `i`'s row in institution `k`'s list, in its column order.
fn list_row(world: &World, k: usize, i: u64) -> Vec<String> {
    let inst = &INSTITUTIONS[k];
    let p = world.people.person(i);
    let held = |id| world.holds(k, id, i);
    let mut s = Stream::new(world.seed, 400 + k as u64, i);
    let m = if held(Ident::Mobile) {
        // Telecom systems often keep the country code.
        if inst.name == "telecom" && s.chance(0.1) {
            format!("+86{}", p.mobile)
        } else {
            p.mobile.clone()
        }
    } else {
        String::new()
    };
    let id = if held(Ident::ResidentId) {
        p.resident_id.clone()
    } else {
        String::new()
    };
    let card = if held(Ident::BankCard) {
        p.bank_card.clone()
    } else {
        String::new()
    };
    let other = |s: &mut Stream, t: &[&str]| pick(s, t).to_string();
    match inst.name {
        "bank" => {
            let branch = tables::BRANCHES[world.branch(i)].0.to_string();
            vec![
                p.name,
                m,
                id,
                card,
                branch,
                opening_date(world.opened(i), &mut s),
            ]
        }
        "telecom" => vec![p.name, m, id, other(&mut s, tables::PLANS)],
        "courier" => vec![p.name, m, p.address],
        _ => vec![p.name, id, m, other(&mut s, tables::DEPARTMENTS)],
    }
}

/// An opening date in the month `m`, written the ways bank systems write dates.
fn opening_date(m: u64, s: &mut Stream) -> String {
    if s.chance(UNREADABLE_DATES) {
        return pick(s, &["不详", "0000-00-00", "--"]).to_string();
    }
    let (y, mo, d) = (2005 + m / 12, m % 12 + 1, 1 + s.below(28));
    match s.below(5) {
        0 => format!("{y}-{mo:02}-{d:02}"),
        1 => format!("{y}/{mo}/{d}"),
        2 => format!("{y}{mo:02}{d:02}"),
        3 => format!("{y}年{mo}月{d}日"),
        _ => format!(
            "{y}-{mo:02}-{d:02} {:02}:{:02}:00",
            s.below(24),
            s.below(60)
        ),
    }
}

/// How a dump writes a mobile number.
fn messy_mobile(s: &mut Stream, m: &str) -> String {
    match s.below(8) {
        0 => format!("+86 {}-{}-{}", &m[..3], &m[3..7], &m[7..]),
        1 => format!("0086{m}"),
        2 => format!("86{m}"),
        3 => m
            .chars()
            .map(|c| char::from_u32(c as u32 - '0' as u32 + '０' as u32).unwrap_or(c))
            .collect(),
        4 => format!("({}) {} {}", &m[..3], &m[3..7], &m[7..]),
        5 => format!("{}.{}.{}", &m[..3], &m[3..7], &m[7..]),
        _ => m.to_string(),
    }
}

/// How a dump writes an ID number.
fn messy_id(s: &mut Stream, p: &Person) -> String {
    let id = &p.resident_id;
    match s.below(6) {
        0 => id.to_lowercase(),
        1 => match &p.legacy_id {
            Some(l) => l.clone(),
            None => id.clone(),
        },
        2 => format!("{} {} {}", &id[..6], &id[6..14], &id[14..]),
        _ => id.clone(),
    }
}

fn messy_card(s: &mut Stream, c: &str) -> String {
    if s.chance(0.5) {
        c.as_bytes()
            .chunks(4)
            .map(|g| String::from_utf8_lossy(g).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        c.to_string()
    }
}

fn messy_name(s: &mut Stream, n: &str) -> String {
    if s.chance(0.2) {
        n.chars().map(String::from).collect::<Vec<_>>().join(" ")
    } else {
        n.to_string()
    }
}

/// An identifier that looks plausible and is invalid: a dump's junk.
fn junk(s: &mut Stream) -> (String, String) {
    let mobile = match s.below(3) {
        0 => format!("1{:09}", s.below(1_000_000_000)), // 10 digits
        1 => format!("12{:09}", s.below(1_000_000_000)), // no such prefix
        _ => "无".to_string(),
    };
    // A valid-looking ID body with the wrong check character.
    let body = format!("11010519{:02}0101{:03}", 50 + s.below(40), s.below(1000));
    let right = id_check(&body);
    let wrong = if right == '0' { '1' } else { '0' };
    (mobile, format!("{body}{wrong}"))
}

/// What the dump writer keeps between rows.
struct DumpState {
    /// Per identifier, the people whose valid identifier the dump carries.
    seen: [Bits; 3],
    /// Up to 1000 recent people, for duplicates.
    recent: Vec<u64>,
    sources: BTreeMap<String, u64>,
    junk_rows: u64,
    duplicate_rows: u64,
}

impl DumpState {
    /// Whose row this is and where it came from: a recent person again, a customer of a
    /// source institution, or somebody no institution knows.
    fn person(&mut self, world: &World, s: &mut Stream) -> (u64, &'static str) {
        let (person, source) = if !self.recent.is_empty() && s.chance(DUPLICATES) {
            self.duplicate_rows += 1;
            let i = self.recent[s.below(self.recent.len() as u64) as usize];
            (i, "duplicate")
        } else {
            let x = s.unit();
            let mut acc = 0.0;
            let mut chosen = None;
            for (src, share) in SOURCES {
                acc += share;
                if x < acc {
                    chosen = Some(src);
                    break;
                }
            }
            match chosen.flatten() {
                Some(k) => (world.customer_of(k, s), INSTITUTIONS[k].name),
                None => (world.population + s.below(world.population), "nobody"),
            }
        };
        if source != "duplicate" {
            *self.sources.entry(source.to_string()).or_insert(0) += 1;
            if self.recent.len() < 1000 {
                self.recent.push(person);
            } else {
                let slot = s.below(1000) as usize;
                self.recent[slot] = person;
            }
        }
        (person, source)
    }

    /// Notes the identifiers row `row` carries, and which institutions it matches.
    fn count(
        &mut self,
        world: &World,
        row: u64,
        person: u64,
        carry: [bool; 3],
        truths: &mut [InstitutionTruth],
    ) {
        for id in IDS {
            if carry[id as usize] {
                self.seen[id as usize].insert(person);
            }
        }
        for (k, t) in truths.iter_mut().enumerate() {
            if IDS
                .iter()
                .any(|&id| carry[id as usize] && world.holds(k, id, person))
            {
                t.matched_rows.push(row);
            }
        }
    }
}

/// Which identifiers a dump row carries: what its source knew, minus what got lost; at least
/// one.
fn carried(world: &World, source: &str, person: u64, s: &mut Stream) -> [bool; 3] {
    let source_k = INSTITUTIONS.iter().position(|i| i.name == source);
    let mut carry = [false; 3];
    for id in IDS {
        let known = match source_k {
            Some(k) => world.holds(k, id, person),
            None => id != Ident::BankCard || s.chance(0.3),
        };
        carry[id as usize] = known && s.chance(if id == Ident::BankCard { 0.5 } else { 0.9 });
    }
    if !carry.iter().any(|c| *c) {
        carry[Ident::Mobile as usize] = true;
    }
    carry
}

/// A dump row of `p` with the carried identifiers, written as leaked data writes them.
fn dump_row(s: &mut Stream, p: &Person, carry: [bool; 3]) -> [String; 6] {
    let m = if carry[0] {
        messy_mobile(s, &p.mobile)
    } else {
        String::new()
    };
    let id = if carry[1] {
        messy_id(s, p)
    } else {
        String::new()
    };
    let card = if carry[2] {
        messy_card(s, &p.bank_card)
    } else {
        String::new()
    };
    let addr = if s.chance(0.5) {
        p.address.clone()
    } else {
        String::new()
    };
    let name = messy_name(s, &p.name);
    let segment = pick(s, tables::SEGMENTS).to_string();
    [name, m, id, card, addr, segment]
}

fn write_dump(
    out: &Path,
    world: &World,
    cfg: &GenConfig,
    truths: &mut [InstitutionTruth],
    progress: &mut dyn Progress,
) -> Result<DumpTruth> {
    let mut sink = open(&out.join(DUMP_FILE), Encoding::Utf8)?;
    sink.line(
        &["姓名", "手机", "身份证号", "银行卡号", "地址", "分类"],
        ',',
    )?;
    let capacity = 2 * cfg.population;
    let mut st = DumpState {
        seen: [
            Bits::new(capacity),
            Bits::new(capacity),
            Bits::new(capacity),
        ],
        recent: Vec::new(),
        sources: BTreeMap::new(),
        junk_rows: 0,
        duplicate_rows: 0,
    };
    // The last rows are the leaked export's planted numbers, as the buyer's file has them.
    let first_canary = cfg.dump_rows - cfg.dump_rows.min(CANARY_ROWS);
    for row in 1..=cfg.dump_rows {
        progress.set(cfg.population * INSTITUTIONS.len() as u64 + row);
        if row > first_canary {
            let n = row - first_canary - 1;
            sink.line(&["", &canary_mobile(0, n), "", "", "", "导出"], ',')?;
            *st.sources.entry("bank canaries".into()).or_insert(0) += 1;
            truths[0].matched_rows.push(row);
            continue;
        }
        let mut s = Stream::new(cfg.seed, 300, row);
        if s.chance(JUNK) {
            let (m, id) = junk(&mut s);
            sink.line(&["无名", &m, &id, "", "", "坏数据"], ',')?;
            st.junk_rows += 1;
            *st.sources.entry("nobody".into()).or_insert(0) += 1;
            continue;
        }
        let (person, source) = st.person(world, &mut s);
        let carry = carried(world, source, person, &mut s);
        let cells = dump_row(&mut s, &world.people.person(person), carry);
        let cells: Vec<&str> = cells.iter().map(String::as_str).collect();
        sink.line(&cells, ',')?;
        st.count(world, row, person, carry, truths);
    }
    sink.finish()?;
    let mut truth = dump_truth(world, cfg, st, truths);
    let planted = cfg.dump_rows.min(CANARY_ROWS);
    *truth.keys.entry(KeyType::Mobile).or_insert(0) += planted;
    *truths[0].matched_keys.entry(KeyType::Mobile).or_insert(0) += planted;
    Ok(truth)
}

/// The bank's canaries, as `suyuan canary mint` writes them.
fn write_canaries(out: &Path) -> Result<()> {
    let mut sink = open(&out.join(CANARY_FILE), Encoding::Utf8)?;
    sink.line(&["export", "mobile"], ',')?;
    for (e, export) in EXPORTS.iter().enumerate() {
        for n in 0..CANARIES_PER_EXPORT {
            sink.line(&[export, &canary_mobile(e, n)], ',')?;
        }
    }
    sink.finish()
}

/// The dump's distinct keys, and each institution's share of them.
fn dump_truth(
    world: &World,
    cfg: &GenConfig,
    st: DumpState,
    truths: &mut [InstitutionTruth],
) -> DumpTruth {
    // Each list's rows are its members in order: row r is the r-th member.
    for (k, t) in truths.iter_mut().enumerate() {
        let mut row = 0u64;
        for i in (0..world.population).filter(|&i| world.member(k, i)) {
            row += 1;
            if IDS
                .iter()
                .any(|&id| world.holds(k, id, i) && st.seen[id as usize].contains(i))
            {
                t.exposed_rows.push(row);
            }
        }
    }
    let mut keys = BTreeMap::new();
    for id in IDS {
        let bits = &st.seen[id as usize];
        keys.insert(id.key_type(), bits.iter().count() as u64);
        for (k, t) in truths.iter_mut().enumerate() {
            let n = bits.iter().filter(|&p| world.holds(k, id, p)).count() as u64;
            t.matched_keys.insert(id.key_type(), n);
        }
    }
    DumpTruth {
        file: DUMP_FILE.to_string(),
        rows: cfg.dump_rows,
        junk_rows: st.junk_rows,
        duplicate_rows: st.duplicate_rows,
        sources: st.sources,
        keys,
    }
}

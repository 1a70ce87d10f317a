//! Reading record files: CSV or TSV, UTF-8 (with or without BOM), UTF-16 with BOM or GB18030,
//! with the identifier columns found from Chinese or English headers. Streams: one record at a
//! time, whatever the file size.

use std::cell::Cell;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::rc::Rc;

use anyhow::{Context, Result, bail};
use encoding_rs::{Decoder, DecoderResult, Encoding, GB18030, UTF_8};
use suyuan_protocol::ident::{ColumnMap, Field, Key, KeySelection, Quality, RecordKeys, extract};
use suyuan_protocol::psi::EpochBuilder;

use labels::LabelColumns;
pub use labels::{LabelOption, check_labels, parse_label};

/// How to read a record file.
#[derive(Debug, Clone, Default)]
pub struct InputOptions {
    /// `--column FIELD=HEADER` overrides of the detected columns.
    pub overrides: Vec<(Field, String)>,
    /// Which key types to derive.
    pub selection: KeySelection,
    /// `--label NAME=HEADER[:month]`: segments read with each record (`import` only).
    pub labels: Vec<LabelOption>,
    /// `--canaries FILE`: records planted in exports, each with its `export` (`import` only).
    pub canaries: Option<std::path::PathBuf>,
}

/// Parses one `FIELD=HEADER` override as given on the command line.
pub fn parse_override(s: &str) -> Result<(Field, String)> {
    let (field, header) = s
        .split_once('=')
        .with_context(|| format!("--column {s:?}: expected FIELD=HEADER, e.g. mobile=手机号码"))?;
    let field: Field = field.trim().parse().with_context(|| {
        let names: Vec<&str> = Field::ALL.iter().map(|f| f.as_str()).collect();
        format!("--column {s:?}: fields are {}", names.join(", "))
    })?;
    if header.is_empty() {
        bail!("--column {s:?}: the header name is empty");
    }
    Ok((field, header.to_string()))
}

/// What was found about a file while reading it.
#[derive(Debug, Clone)]
pub struct InputSummary {
    /// The text encoding detected.
    pub encoding: &'static str,
    /// The field delimiter detected.
    pub delimiter: u8,
    /// The columns used, as `(field, header)`.
    pub columns: Vec<(Field, String)>,
    /// Rows, keys and rejections.
    pub quality: Quality,
    /// Each label with the header it was read from and its count of unreadable cells.
    pub labels: Vec<(LabelOption, String, u64)>,
}

impl fmt::Display for InputSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let delim = match self.delimiter {
            b'\t' => "tab",
            b',' => "comma",
            b';' => "semicolon",
            b'|' => "pipe",
            _ => "other",
        };
        let cols: Vec<String> = self
            .columns
            .iter()
            .map(|(f, h)| format!("{f}={h}"))
            .collect();
        write!(
            f,
            "{}, {delim}-separated; columns {}",
            self.encoding,
            cols.join(", ")
        )
    }
}

/// Reads `path` and calls `each` with every data row's 1-based number (header excluded) and
/// its keys. Fails with the file and line on malformed input; never drops a row silently.
pub fn for_each_record(
    path: &Path,
    opts: &InputOptions,
    each: impl FnMut(u64, RecordKeys) -> Result<()>,
) -> Result<InputSummary> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    read_records(file, path, opts, each)
}

/// Longest record accepted: a quote that is never closed would otherwise make the reader buffer
/// the rest of the file as one field.
pub const MAX_RECORD_BYTES: u64 = 1 << 20;

/// [`for_each_record`] on any byte source; `path` names it in errors (and `.tsv` means tab).
pub fn read_records(
    source: impl Read + 'static,
    path: &Path,
    opts: &InputOptions,
    mut each: impl FnMut(u64, RecordKeys) -> Result<()>,
) -> Result<InputSummary> {
    read_labeled_records(source, path, opts, |row, keys, _| each(row, keys))
}

/// [`read_records`] with each record's label values (one per `opts.labels`, `None` for an
/// empty cell or an unreadable date, which the summary counts).
pub fn read_labeled_records(
    source: impl Read + 'static,
    path: &Path,
    opts: &InputOptions,
    mut each: impl FnMut(u64, RecordKeys, Vec<Option<String>>) -> Result<()>,
) -> Result<InputSummary> {
    let OpenCsv {
        encoding,
        delimiter,
        mut csv,
        budget,
        headers,
    } = open_csv(source, path)?;
    let columns = find_columns(path, &headers, opts)?;
    let header_refs: Vec<&str> = headers.iter().collect();
    let mut label_columns = LabelColumns::find(&opts.labels, &header_refs)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let used: Vec<(Field, String)> = columns
        .fields()
        .map(|(f, i)| (f, headers.get(i).unwrap_or_default().to_string()))
        .collect();

    let mut quality = Quality::default();
    let mut record = csv::StringRecord::new();
    let mut row = 0u64;
    loop {
        budget.set(MAX_RECORD_BYTES);
        let more = csv
            .read_record(&mut record)
            .map_err(|e| record_error(path, row, &e))?;
        if !more {
            break;
        }
        row += 1;
        let cells: Vec<&str> = record.iter().collect();
        let keys = extract(&columns, &cells, &opts.selection);
        quality.record(&keys);
        let values = label_columns.values(&cells);
        each(row, keys, values)?;
    }
    let labels = label_columns
        .used(&header_refs)
        .into_iter()
        .zip(&label_columns.unreadable)
        .map(|((l, h), n)| (l, h, *n))
        .collect();
    Ok(InputSummary {
        encoding: encoding.name(),
        delimiter,
        columns: used,
        quality,
        labels,
    })
}

/// A list opened as every reader of lists opens it: decoded, its delimiter detected, records
/// bounded in length, the header read.
pub(crate) struct OpenCsv {
    /// The detected encoding.
    pub(crate) encoding: &'static Encoding,
    /// The detected delimiter.
    pub(crate) delimiter: u8,
    /// The reader, positioned after the header.
    pub(crate) csv: csv::Reader<Budgeted<BufReader<Box<dyn Read>>>>,
    /// Reset to [`MAX_RECORD_BYTES`] before each record.
    pub(crate) budget: Rc<Cell<u64>>,
    /// The header line.
    pub(crate) headers: csv::StringRecord,
}

/// Opens `source` (named `path` in errors) as [`OpenCsv`].
pub(crate) fn open_csv(source: impl Read + 'static, path: &Path) -> Result<OpenCsv> {
    let (encoding, text) = decoded(source, path)?;
    let mut text = BufReader::with_capacity(1 << 16, text);
    let first_line = peek_first_line(&mut text)
        .with_context(|| format!("{}: cannot decode as {}", path.display(), encoding.name()))?;
    let delimiter = detect_delimiter(path, &first_line);
    let budget = Rc::new(Cell::new(MAX_RECORD_BYTES));
    let text = Budgeted {
        inner: text,
        left: Rc::clone(&budget),
    };
    let mut csv = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(false)
        .has_headers(true)
        .from_reader(text);
    let headers = csv
        .headers()
        .with_context(|| format!("{}: cannot read the header line", path.display()))?
        .clone();
    Ok(OpenCsv {
        encoding,
        delimiter,
        csv,
        budget,
        headers,
    })
}

/// The source as UTF-8 text, after detecting its encoding from the first 64 KiB.
fn decoded(source: impl Read + 'static, path: &Path) -> Result<(&'static Encoding, Box<dyn Read>)> {
    let mut reader = BufReader::with_capacity(1 << 16, source);
    let mut sample = vec![0u8; 1 << 16];
    let n = read_up_to(&mut reader, &mut sample)
        .with_context(|| format!("cannot read {}", path.display()))?;
    sample.truncate(n);
    let encoding = detect_encoding(&sample);
    let text: Box<dyn Read> = if encoding == UTF_8 {
        let skip = if sample.starts_with(b"\xEF\xBB\xBF") {
            3
        } else {
            0
        };
        Box::new(io::Cursor::new(sample.split_off(skip)).chain(reader))
    } else {
        Box::new(Decoding::new(
            encoding,
            io::Cursor::new(sample).chain(reader),
        ))
    };
    Ok((encoding, text))
}

/// The detected columns with the `--column` overrides applied; at least one must hold an
/// identifier, or there is nothing to match on.
fn find_columns(
    path: &Path,
    headers: &csv::StringRecord,
    opts: &InputOptions,
) -> Result<ColumnMap> {
    let header_refs: Vec<&str> = headers.iter().collect();
    let mut columns = ColumnMap::detect(&header_refs);
    for (field, header) in &opts.overrides {
        columns
            .override_header(&header_refs, *field, header)
            .with_context(|| {
                format!(
                    "{}: --column {field}={header}: headers are {}",
                    path.display(),
                    header_refs.join(", ")
                )
            })?;
    }
    let identifier_fields = [
        Field::Mobile,
        Field::ResidentId,
        Field::BankCard,
        Field::Email,
    ];
    if !identifier_fields
        .iter()
        .any(|f| columns.column(*f).is_some())
    {
        bail!(
            "{}: no identifier column found among headers [{}]; name one with --column, e.g. --column mobile=HEADER",
            path.display(),
            header_refs.join(", ")
        );
    }
    Ok(columns)
}

/// Keys tagged per batch while a list streams into an epoch: large enough to keep every core
/// busy, small enough that the file is never held whole.
pub const EPOCH_BATCH: usize = 1 << 16;

/// Reads `path` into `builder`, [`EPOCH_BATCH`] keys at a time; `batched(row)` after each full
/// batch, with the rows read so far.
pub fn build_epoch(
    path: &Path,
    opts: &InputOptions,
    builder: &mut EpochBuilder,
    mut batched: impl FnMut(u64),
) -> Result<InputSummary> {
    if !builder.label_specs().is_empty() {
        // The builder's labels past the file's own (the canary label) get no value here.
        let Some(pad) = builder.label_specs().len().checked_sub(opts.labels.len()) else {
            bail!(
                "{}: {} labels asked of an epoch that has {}",
                path.display(),
                opts.labels.len(),
                builder.label_specs().len()
            );
        };
        return build_labeled_epoch(path, opts, builder, (0, pad), batched);
    }
    let mut batch: Vec<Key> = Vec::with_capacity(EPOCH_BATCH);
    let summary = for_each_record(path, opts, |row, rk| {
        batch.extend(rk.keys);
        if batch.len() >= EPOCH_BATCH {
            builder.try_add(&batch)?;
            batch.clear();
            batched(row);
        }
        Ok(())
    })?;
    builder.try_add(&batch)?;
    Ok(summary)
}

/// [`build_epoch`] with labels: each record's keys go in with that record's values, after
/// `pad.0` and before `pad.1` labels it has no column for (a list has no `canary`, a canary
/// file none of the list's labels).
pub fn build_labeled_epoch(
    path: &Path,
    opts: &InputOptions,
    builder: &mut EpochBuilder,
    pad: (usize, usize),
    mut batched: impl FnMut(u64),
) -> Result<InputSummary> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut rows: Vec<(Vec<Key>, Vec<Option<String>>)> = Vec::new();
    let mut keys_in_batch = 0usize;
    let mut flush = |rows: &mut Vec<(Vec<Key>, Vec<Option<String>>)>| -> Result<()> {
        let values: Vec<Vec<Option<&str>>> = rows
            .iter()
            .map(|(_, v)| v.iter().map(Option::as_deref).collect())
            .collect();
        let batch: Vec<(&[Key], &[Option<&str>])> = rows
            .iter()
            .zip(&values)
            .map(|((k, _), v)| (k.as_slice(), v.as_slice()))
            .collect();
        builder
            .add_labeled_rows(&batch)
            .with_context(|| format!("{}: labels", path.display()))?;
        rows.clear();
        Ok(())
    };
    let summary = read_labeled_records(file, path, opts, |row, rk, values| {
        keys_in_batch += rk.keys.len();
        let values = std::iter::repeat_n(None, pad.0)
            .chain(values)
            .chain(std::iter::repeat_n(None, pad.1))
            .collect();
        rows.push((rk.keys, values));
        if keys_in_batch >= EPOCH_BATCH {
            flush(&mut rows)?;
            keys_in_batch = 0;
            batched(row);
        }
        Ok(())
    })?;
    flush(&mut rows)?;
    Ok(summary)
}

/// Says what is wrong and where: a row with the wrong number of fields (usually a delimiter
/// inside an unquoted value) shifts every later column, so it stops the run.
pub(crate) fn record_error(path: &Path, row: u64, e: &csv::Error) -> anyhow::Error {
    let line = e.position().map_or(row + 2, |p| p.line());
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => anyhow::anyhow!(
            "{}: line {line} has {len} fields where the header has {expected_len} (quote values that contain the delimiter)",
            path.display()
        ),
        csv::ErrorKind::Io(io) if io.kind() == io::ErrorKind::FileTooLarge => anyhow::anyhow!(
            "{}: the record starting after line {} is longer than {} bytes (a quote that is never closed?)",
            path.display(),
            row + 1,
            MAX_RECORD_BYTES
        ),
        csv::ErrorKind::Utf8 { .. } => anyhow::anyhow!(
            "{}: line {line} is not valid UTF-8 (the file started as UTF-8; is it mixed with GB18030?)",
            path.display()
        ),
        _ => anyhow::anyhow!("{}: line {line}: {e}", path.display()),
    }
}

/// Fails a read once one record has taken more than its share of bytes. The reader refills
/// its buffer ahead of the record it parses, so the budget is reset per record and checked
/// with the reader's 8 KiB slack.
pub(crate) struct Budgeted<R> {
    inner: R,
    left: Rc<Cell<u64>>,
}

impl<R: Read> Read for Budgeted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left.get() == 0 {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                "record too long",
            ));
        }
        let n = self.inner.read(buf)?;
        self.left.set(self.left.get().saturating_sub(n as u64));
        Ok(n)
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A BOM wins; otherwise valid UTF-8 (a sequence cut at the sample's end is fine) is UTF-8, and
/// anything else is read as GB18030, the superset of GBK and GB2312 in which Chinese systems
/// export.
fn detect_encoding(sample: &[u8]) -> &'static Encoding {
    if let Some((enc, _)) = Encoding::for_bom(sample) {
        return enc;
    }
    match std::str::from_utf8(sample) {
        Ok(_) => UTF_8,
        Err(e) if e.error_len().is_none() => UTF_8,
        Err(_) => GB18030,
    }
}

fn peek_first_line(r: &mut BufReader<Box<dyn Read>>) -> io::Result<String> {
    use std::io::BufRead;
    let buf = r.fill_buf()?;
    let end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
}

/// `.tsv` means tab; otherwise the most frequent of tab, comma, semicolon and pipe in the
/// header line (comma when none).
fn detect_delimiter(path: &Path, header: &str) -> u8 {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("tsv"))
    {
        return b'\t';
    }
    [b'\t', b',', b';', b'|']
        .into_iter()
        .map(|d| (header.bytes().filter(|&b| b == d).count(), d))
        .filter(|(n, _)| *n > 0)
        .max_by_key(|(n, d)| (*n, *d == b','))
        .map_or(b',', |(_, d)| d)
}

/// A `Read` that decodes a legacy encoding to UTF-8 and fails, with the byte offset, on an
/// invalid sequence instead of substituting U+FFFD (which would silently change identifiers).
struct Decoding<R> {
    inner: R,
    decoder: Decoder,
    input: Vec<u8>,
    start: usize,
    end: usize,
    consumed: u64,
    eof: bool,
    done: bool,
}

impl<R: Read> Decoding<R> {
    fn new(encoding: &'static Encoding, inner: R) -> Self {
        Decoding {
            inner,
            decoder: encoding.new_decoder_with_bom_removal(),
            input: vec![0; 1 << 16],
            start: 0,
            end: 0,
            consumed: 0,
            eof: false,
            done: false,
        }
    }
}

impl<R: Read> Read for Decoding<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.len() < 4 {
            return Err(io::Error::other("read buffer too small for decoding"));
        }
        loop {
            if self.done {
                return Ok(0);
            }
            if self.start == self.end && !self.eof {
                let n = self.inner.read(&mut self.input)?;
                self.start = 0;
                self.end = n;
                self.eof = n == 0;
            }
            let (result, read, written) = self.decoder.decode_to_utf8_without_replacement(
                &self.input[self.start..self.end],
                out,
                self.eof,
            );
            self.start += read;
            self.consumed += read as u64;
            match result {
                DecoderResult::Malformed(bad, _) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "invalid {} byte sequence near byte {}",
                            self.decoder.encoding().name(),
                            self.consumed.saturating_sub(u64::from(bad))
                        ),
                    ));
                }
                DecoderResult::InputEmpty if self.eof => self.done = written == 0,
                _ => {}
            }
            if written > 0 {
                return Ok(written);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_encodings() {
        assert_eq!(detect_encoding("姓名,手机\n".as_bytes()), UTF_8);
        let (gbk, _, _) = GB18030.encode("姓名,手机\n张慧,13800138000\n");
        assert_eq!(detect_encoding(&gbk), GB18030);
        assert_eq!(detect_encoding(b"\xEF\xBB\xBFname"), UTF_8);
        // A multi-byte character cut by the sample boundary is still UTF-8.
        let s = "手机".as_bytes();
        assert_eq!(detect_encoding(&s[..4]), UTF_8);
    }

    #[test]
    fn detects_delimiters() {
        let p = Path::new("x.csv");
        assert_eq!(detect_delimiter(p, "name,mobile"), b',');
        assert_eq!(detect_delimiter(p, "name\tmobile\tid"), b'\t');
        assert_eq!(detect_delimiter(p, "mobile"), b',');
        assert_eq!(detect_delimiter(Path::new("x.tsv"), "a,b"), b'\t');
        assert_eq!(detect_delimiter(p, "a;b;c"), b';');
    }

    #[test]
    fn decoding_reports_invalid_bytes() {
        let mut bytes = GB18030.encode("手机\n").0.into_owned();
        bytes.extend_from_slice(&[0x81, 0x20]); // a lead byte followed by an invalid trail
        let mut d = Decoding::new(GB18030, io::Cursor::new(bytes));
        let mut s = String::new();
        let err = d.read_to_string(&mut s).unwrap_err();
        assert!(
            err.to_string().contains("invalid gb18030 byte sequence"),
            "{err}"
        );
    }

    #[test]
    fn parses_overrides() {
        assert_eq!(
            parse_override("mobile=手机号码").unwrap(),
            (Field::Mobile, "手机号码".to_string())
        );
        assert!(parse_override("phone").is_err());
        assert!(parse_override("colour=x").is_err());
    }
}

pub mod exposed;
pub mod import;
mod labels;

//! `check --out`: the rows of an institution's own file that a published dump holds, written
//! back in the file's own columns, delimiter and encoding, with a 1-based `row` column first
//! (the row numbers every report uses: data rows, the header not counted).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE};

/// Writes the rows `rows` (1-based) of `input` to `out` (mode 0600); returns how many.
pub fn write(input: &Path, rows: &[u64], out: &Path) -> Result<u64> {
    let wanted: BTreeSet<u64> = rows.iter().copied().collect();
    let file = File::open(input).with_context(|| format!("cannot open {}", input.display()))?;
    let bom = has_bom(input)?;
    // Opened as the query read it: the same rows, numbered the same way.
    let super::OpenCsv {
        encoding,
        delimiter,
        mut csv,
        budget,
        headers,
    } = super::open_csv(file, input)?;
    let mut w = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .from_writer(Vec::new());
    w.write_record(std::iter::once("row").chain(headers.iter()))?;
    let mut record = csv::StringRecord::new();
    let (mut row, mut written) = (0u64, 0u64);
    loop {
        budget.set(super::MAX_RECORD_BYTES);
        let more = csv
            .read_record(&mut record)
            .map_err(|e| super::record_error(input, row, &e))?;
        if !more {
            break;
        }
        row += 1;
        if wanted.contains(&row) {
            let n = row.to_string();
            w.write_record(std::iter::once(n.as_str()).chain(record.iter()))?;
            written += 1;
        }
    }
    if written != wanted.len() as u64 {
        bail!(
            "{}: {} of the {} matched rows are not in the file (it changed since it was read?)",
            input.display(),
            wanted.len() as u64 - written,
            wanted.len()
        );
    }
    let utf8 = w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    let bytes = encode(&utf8, encoding, bom);
    crate::query::report::write_private(out, &bytes)?;
    Ok(written)
}

/// Whether the file starts with a byte-order mark (kept in the output when it did).
fn has_bom(path: &Path) -> Result<bool> {
    let mut head = [0u8; 3];
    let mut f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let n = f.read(&mut head)?;
    Ok(Encoding::for_bom(&head[..n]).is_some())
}

/// UTF-8 text in the input's encoding: UTF-8 (with its BOM if it had one), GB18030, or UTF-16
/// with its BOM (encoding_rs encodes no UTF-16, so it is done here).
fn encode(utf8: &[u8], encoding: &'static Encoding, bom: bool) -> Vec<u8> {
    let text = String::from_utf8_lossy(utf8);
    if encoding == UTF_16LE || encoding == UTF_16BE {
        let le = encoding == UTF_16LE;
        let mut out = Vec::with_capacity(2 + text.len() * 2);
        for u in std::iter::once(0xFEFF).chain(text.encode_utf16()) {
            out.extend_from_slice(&if le { u.to_le_bytes() } else { u.to_be_bytes() });
        }
        return out;
    }
    if encoding == UTF_8 {
        let mut out = if bom {
            b"\xEF\xBB\xBF".to_vec()
        } else {
            Vec::new()
        };
        out.extend_from_slice(utf8);
        return out;
    }
    encoding.encode(&text).0.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(bytes: &[u8], name: &str, rows: &[u64]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join(name);
        std::fs::write(&input, bytes).unwrap();
        let out = dir.path().join("exposed.csv");
        assert_eq!(write(&input, rows, &out).unwrap(), rows.len() as u64);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&out).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        std::fs::read(&out).unwrap()
    }

    #[test]
    fn the_rows_asked_come_back_in_the_files_own_encoding_and_columns() {
        let text = "姓名,手机号\n张三,13800000001\n李四,13800000002\n\"王,五\",13800000003\n";
        let out = roundtrip(text.as_bytes(), "c.csv", &[3, 1]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "row,姓名,手机号\n1,张三,13800000001\n3,\"王,五\",13800000003\n"
        );
        let gbk = encoding_rs::GB18030.encode(text).0.into_owned();
        let out = roundtrip(&gbk, "c.csv", &[2]);
        let want = encoding_rs::GB18030
            .encode("row,姓名,手机号\n2,李四,13800000002\n")
            .0;
        assert_eq!(out, want.into_owned());
        let tsv = "姓名\t手机号\n张三\t13800000001\n";
        let mut utf16 = vec![0xFF, 0xFE];
        for u in tsv.encode_utf16() {
            utf16.extend_from_slice(&u.to_le_bytes());
        }
        let out = roundtrip(&utf16, "c.tsv", &[1]);
        let mut want = vec![0xFF, 0xFE];
        for u in "row\t姓名\t手机号\n1\t张三\t13800000001\n".encode_utf16() {
            want.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(out, want);
        let bom = [b"\xEF\xBB\xBF".as_slice(), text.as_bytes()].concat();
        assert!(roundtrip(&bom, "c.csv", &[1]).starts_with(b"\xEF\xBB\xBFrow,"));
    }

    #[test]
    fn a_row_past_the_end_is_an_error_not_a_short_file() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("c.csv");
        std::fs::write(&input, "手机号\n13800000001\n").unwrap();
        let e = write(&input, &[1, 5], &dir.path().join("o.csv")).unwrap_err();
        assert!(
            e.to_string()
                .contains("1 of the 2 matched rows are not in the file"),
            "{e}"
        );
    }
}

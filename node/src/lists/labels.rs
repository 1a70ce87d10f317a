//! `import --label NAME=HEADER[:month]`: which column each label is read from, and how.

use anyhow::{Context, Result, bail};
use suyuan_protocol::ident::canonical_month;
use suyuan_protocol::psi::labels::{LabelKind, LabelSpec, MAX_LABELS, check_specs};

/// One `--label` as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelOption {
    /// The label's name and kind.
    pub spec: LabelSpec,
    /// The column it is read from.
    pub header: String,
}

/// Parses `NAME=HEADER` or `NAME=HEADER:month`.
pub fn parse_label(s: &str) -> Result<LabelOption> {
    let (name, rest) = s.split_once('=').with_context(|| {
        format!("--label {s:?}: expected NAME=HEADER or NAME=HEADER:month, e.g. branch=开户网点")
    })?;
    let (header, kind) = match rest.rsplit_once(':') {
        Some((h, "month")) => (h, LabelKind::Month),
        _ => (rest, LabelKind::Text),
    };
    if header.trim().is_empty() {
        bail!("--label {s:?}: the header name is empty");
    }
    let spec = LabelSpec {
        name: name.trim().to_string(),
        kind,
    };
    check_specs(std::slice::from_ref(&spec)).with_context(|| format!("--label {s:?}"))?;
    Ok(LabelOption {
        spec,
        header: header.trim().to_string(),
    })
}

/// Checks a whole set of `--label` options: at most eight, names distinct.
pub fn check_labels(labels: &[LabelOption]) -> Result<()> {
    let specs: Vec<LabelSpec> = labels.iter().map(|l| l.spec.clone()).collect();
    check_specs(&specs).with_context(|| format!("--label (at most {MAX_LABELS})"))?;
    Ok(())
}

/// The labels' columns in one file, and what reading them found.
#[derive(Debug, Clone)]
pub(crate) struct LabelColumns {
    labels: Vec<(LabelOption, usize)>,
    /// Per label, non-empty cells that could not be read.
    pub(crate) unreadable: Vec<u64>,
}

impl LabelColumns {
    /// Finds each label's header (exactly, or ignoring case and surrounding spaces).
    pub(crate) fn find(labels: &[LabelOption], headers: &[&str]) -> Result<LabelColumns, String> {
        let mut found = Vec::with_capacity(labels.len());
        for l in labels {
            let exact = headers.iter().position(|h| *h == l.header);
            let loose = || {
                headers
                    .iter()
                    .position(|h| h.trim().to_lowercase() == l.header.to_lowercase())
            };
            match exact.or_else(loose) {
                Some(i) => found.push((l.clone(), i)),
                None => {
                    return Err(format!(
                        "--label {}={}: no such header; headers are {}",
                        l.spec.name,
                        l.header,
                        headers.join(", ")
                    ));
                }
            }
        }
        Ok(LabelColumns {
            unreadable: vec![0; found.len()],
            labels: found,
        })
    }

    /// One record's value per label: the trimmed text, or the month `YYYY-MM` of a date;
    /// `None` for an empty cell or an unreadable date (counted).
    pub(crate) fn values(&mut self, cells: &[&str]) -> Vec<Option<String>> {
        let mut out = Vec::with_capacity(self.labels.len());
        for (i, (l, col)) in self.labels.iter().enumerate() {
            let cell = cells.get(*col).map_or("", |c| c.trim());
            if cell.is_empty() {
                out.push(None);
                continue;
            }
            out.push(match l.spec.kind {
                LabelKind::Text => Some(cell.to_string()),
                LabelKind::Month => match canonical_month(cell) {
                    Ok(m) => Some(m),
                    Err(_) => {
                        self.unreadable[i] += 1;
                        None
                    }
                },
            });
        }
        out
    }

    /// `(label, header)` as found.
    pub(crate) fn used(&self, headers: &[&str]) -> Vec<(LabelOption, String)> {
        self.labels
            .iter()
            .map(|(l, i)| {
                (
                    l.clone(),
                    headers.get(*i).copied().unwrap_or("").to_string(),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_options() {
        let l = parse_label("branch=开户网点").unwrap();
        assert_eq!(
            (l.spec.name.as_str(), l.header.as_str(), l.spec.kind),
            ("branch", "开户网点", LabelKind::Text)
        );
        let l = parse_label("opened=开户日期:month").unwrap();
        assert_eq!(
            (l.header.as_str(), l.spec.kind),
            ("开户日期", LabelKind::Month)
        );
        // A colon inside a header that is not ":month" stays in the header.
        assert_eq!(parse_label("t=时间:分").unwrap().header, "时间:分");
        assert!(
            parse_label("branch")
                .unwrap_err()
                .to_string()
                .contains("expected NAME=HEADER")
        );
        assert!(
            parse_label("branch=")
                .unwrap_err()
                .to_string()
                .contains("header name is empty")
        );
        assert!(format!("{:#}", parse_label("Branch=x").unwrap_err()).contains("lower-case"));
        let two = [parse_label("b=x").unwrap(), parse_label("b=y").unwrap()];
        assert!(format!("{:#}", check_labels(&two).unwrap_err()).contains("given twice"));
    }

    #[test]
    fn values_and_unreadable_dates() {
        let labels = [
            parse_label("branch=网点").unwrap(),
            parse_label("opened=开户日期:month").unwrap(),
        ];
        let headers = ["手机", " 网点 ", "开户日期"];
        let mut c = LabelColumns::find(&labels, &headers).unwrap();
        assert_eq!(
            c.values(&["x", " 乌鲁木齐分行 ", "2019年3月15日"]),
            [Some("乌鲁木齐分行".into()), Some("2019-03".into())]
        );
        assert_eq!(c.values(&["x", "", "去年"]), [None, None]);
        assert_eq!(c.values(&["x", "a", ""]), [Some("a".into()), None]);
        assert_eq!(c.unreadable, [0, 1]);
        let err = LabelColumns::find(&[parse_label("branch=支行").unwrap()], &headers).unwrap_err();
        assert_eq!(
            err,
            "--label branch=支行: no such header; headers are 手机,  网点 , 开户日期"
        );
    }
}

//! Detecting which CSV column holds which field.

use std::collections::BTreeMap;

use unicode_normalization::UnicodeNormalization;

use super::Field;

/// A column override that names no header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ColumnError {
    /// No header matches the requested name.
    #[error("no column named {header:?}")]
    NoSuchHeader {
        /// The header that was asked for.
        header: String,
    },
}

/// Header aliases per field, already in normalised form. The first list
/// is specific; the second holds generic names (`id`, `account`, `mail`,
/// `电话`…) that are only used when no specific header is present, so a
/// row-number `id` column does not shadow `身份证号`.
const ALIASES: [(Field, &[&str], &[&str]); 7] = [
    (
        Field::Name,
        &[
            "姓名",
            "名字",
            "客户姓名",
            "收件人",
            "联系人",
            "name",
            "fullname",
            "customername",
        ],
        &[],
    ),
    (
        Field::Mobile,
        &[
            "手机",
            "手机号",
            "手机号码",
            "移动电话",
            "mobile",
            "mobilephone",
            "cellphone",
            "msisdn",
        ],
        &[
            "电话",
            "电话号码",
            "联系电话",
            "联系方式",
            "phone",
            "cell",
            "tel",
            "telephone",
        ],
    ),
    (
        Field::ResidentId,
        &[
            "身份证",
            "身份证号",
            "身份证号码",
            "公民身份号码",
            "idnumber",
            "idno",
            "idcard",
            "residentid",
            "citizenid",
        ],
        &["证件号", "证件号码", "id"],
    ),
    (
        Field::BankCard,
        &["银行卡", "银行卡号", "bankcard", "cardnumber", "cardno"],
        &["卡号", "账号", "account"],
    ),
    (
        Field::Email,
        &["邮箱", "电子邮箱", "电子邮件", "email"],
        &["mail"],
    ),
    (
        Field::Birthdate,
        &[
            "出生日期",
            "生日",
            "birthdate",
            "birthday",
            "dateofbirth",
            "dob",
        ],
        &[],
    ),
    (
        Field::Address,
        &[
            "地址",
            "住址",
            "家庭住址",
            "收货地址",
            "联系地址",
            "address",
            "addr",
        ],
        &[],
    ),
];

/// Header comparison form: NFKC, trimmed, ASCII lower-case, without
/// spaces, underscores and dashes (so `E-mail`, `mobile_phone`, `Ｅｍａｉｌ`
/// all match).
/// Words that mark an identifier column inside a longer header, most specific field first.
const CONTAINS: [(Field, &[&str]); 4] = [
    (
        Field::ResidentId,
        &["身份证", "证件号", "idnumber", "idcard"],
    ),
    (Field::BankCard, &["银行卡", "卡号", "cardnumber", "cardno"]),
    (Field::Mobile, &["手机", "电话", "mobile", "phone"]),
    (Field::Email, &["邮箱", "email"]),
];

fn normalise_header(h: &str) -> String {
    h.nfkc()
        .filter(|c| !c.is_whitespace() && !matches!(c, '_' | '-' | '\u{FEFF}' | '\u{200B}'))
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Column detection from CSV headers (Chinese or English), overridable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnMap {
    columns: BTreeMap<Field, usize>,
}

impl ColumnMap {
    /// Detect fields from headers; per field the first column with a
    /// specific alias wins, else the first with a generic one.
    pub fn detect(headers: &[&str]) -> ColumnMap {
        let normalised: Vec<String> = headers.iter().map(|h| normalise_header(h)).collect();
        let find = |aliases: &[&str]| {
            normalised
                .iter()
                .position(|h| aliases.contains(&h.as_str()))
        };
        let mut map = ColumnMap::default();
        for (field, specific, generic) in ALIASES {
            if let Some(col) = find(specific).or_else(|| find(generic)) {
                map.set(field, col);
            }
        }
        // Compound headers ("收件人电话", "客户手机号", "持卡人身份证号"): an identifier field
        // still missing takes the first unclaimed column whose header contains one of its words.
        for (field, words) in CONTAINS {
            if map.column(field).is_some() {
                continue;
            }
            let taken: Vec<usize> = map.columns.values().copied().collect();
            let hit = normalised
                .iter()
                .enumerate()
                .position(|(i, h)| !taken.contains(&i) && words.iter().any(|w| h.contains(w)));
            if let Some(col) = hit {
                map.set(field, col);
            }
        }
        map
    }

    /// Detect, then point `field` at the column headed `header`.
    pub fn with_override(
        headers: &[&str],
        field: Field,
        header: &str,
    ) -> Result<ColumnMap, ColumnError> {
        let mut map = ColumnMap::detect(headers);
        map.override_header(headers, field, header)?;
        Ok(map)
    }

    /// Point `field` at the first column whose header equals `header`
    /// (exactly, or else after header normalisation).
    pub fn override_header(
        &mut self,
        headers: &[&str],
        field: Field,
        header: &str,
    ) -> Result<(), ColumnError> {
        let wanted = normalise_header(header);
        let col = headers
            .iter()
            .position(|h| *h == header)
            .or_else(|| headers.iter().position(|h| normalise_header(h) == wanted))
            .ok_or_else(|| ColumnError::NoSuchHeader {
                header: header.to_owned(),
            })?;
        self.set(field, col);
        Ok(())
    }

    /// Point `field` at column index `column`.
    pub fn set(&mut self, field: Field, column: usize) {
        self.columns.insert(field, column);
    }

    /// Forget `field`, e.g. when a detected column is wrong.
    pub fn remove(&mut self, field: Field) {
        self.columns.remove(&field);
    }

    /// Column index of `field`, if known.
    pub fn column(&self, field: Field) -> Option<usize> {
        self.columns.get(&field).copied()
    }

    /// Known fields and their columns, in field order.
    pub fn fields(&self) -> impl Iterator<Item = (Field, usize)> {
        self.columns.iter().map(|(f, c)| (*f, *c))
    }

    /// Whether no field is mapped.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn compound_headers_are_found_by_their_words() {
        let map = ColumnMap::detect(&["收件人", "收件人电话", "收货地址"]);
        assert_eq!(map.column(Field::Name), Some(0));
        assert_eq!(map.column(Field::Mobile), Some(1));
        assert_eq!(map.column(Field::Address), Some(2));
        let map = ColumnMap::detect(&["持卡人身份证号", "客户手机号", "借记卡卡号"]);
        assert_eq!(map.column(Field::ResidentId), Some(0));
        assert_eq!(map.column(Field::Mobile), Some(1));
        assert_eq!(map.column(Field::BankCard), Some(2));
        // An exact alias still wins over a compound header.
        let map = ColumnMap::detect(&["紧急联系人电话", "手机"]);
        assert_eq!(map.column(Field::Mobile), Some(1));
    }

    use super::*;

    #[test]
    fn detect_chinese() {
        let headers = [
            "\u{FEFF}序号",
            "姓名",
            "手机号码",
            "身份证号",
            "银行卡号",
            "电子邮箱",
            "出生日期",
            "家庭住址",
            "备注",
        ];
        let map = ColumnMap::detect(&headers);
        let got: Vec<(Field, usize)> = map.fields().collect();
        assert_eq!(
            got,
            [
                (Field::Name, 1),
                (Field::Mobile, 2),
                (Field::ResidentId, 3),
                (Field::BankCard, 4),
                (Field::Email, 5),
                (Field::Birthdate, 6),
                (Field::Address, 7),
            ]
        );
    }

    #[test]
    fn detect_english_variants() {
        let headers = [
            "ID",
            " Full_Name ",
            "Mobile Phone",
            "E-Mail",
            "ID-Number",
            "Card No",
            "Date of Birth",
            "ADDR",
            "Tel",
        ];
        let map = ColumnMap::detect(&headers);
        assert_eq!(map.column(Field::Name), Some(1));
        assert_eq!(map.column(Field::Mobile), Some(2));
        assert_eq!(map.column(Field::Email), Some(3));
        // Specific "ID-Number" beats the generic "ID" in column 0.
        assert_eq!(map.column(Field::ResidentId), Some(4));
        assert_eq!(map.column(Field::BankCard), Some(5));
        assert_eq!(map.column(Field::Birthdate), Some(6));
        assert_eq!(map.column(Field::Address), Some(7));
    }

    #[test]
    fn first_match_wins_and_generic_fallback() {
        let map = ColumnMap::detect(&["电话", "手机", "手机号"]);
        assert_eq!(map.column(Field::Mobile), Some(1));
        let map = ColumnMap::detect(&["name", "id", "联系电话", "联系方式"]);
        assert_eq!(map.column(Field::ResidentId), Some(1));
        assert_eq!(map.column(Field::Mobile), Some(2));
        let map = ColumnMap::detect(&["Ｅｍａｉｌ"]);
        assert_eq!(map.column(Field::Email), Some(0));
    }

    #[test]
    fn nothing_detected() {
        let map = ColumnMap::detect(&["foo", "bar"]);
        assert!(map.is_empty());
        assert_eq!(map.column(Field::Name), None);
    }

    #[test]
    fn overrides() {
        let headers = ["客户", "号码", "手机"];
        let mut map = ColumnMap::detect(&headers);
        assert_eq!(map.column(Field::Mobile), Some(2));
        assert_eq!(map.override_header(&headers, Field::Mobile, "号码"), Ok(()));
        assert_eq!(map.column(Field::Mobile), Some(1));
        assert_eq!(
            map.override_header(&headers, Field::Email, "mail"),
            Err(ColumnError::NoSuchHeader {
                header: "mail".to_owned()
            })
        );
        let map = ColumnMap::with_override(&headers, Field::Name, " 客户 ");
        assert_eq!(map.map(|m| m.column(Field::Name)), Ok(Some(0)));
        let mut map = ColumnMap::default();
        map.set(Field::Email, 4);
        assert_eq!(map.column(Field::Email), Some(4));
        map.remove(Field::Email);
        assert!(map.is_empty());
    }
}

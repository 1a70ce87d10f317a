//! Deriving keys from one record.

use super::normalize::{fold, split_multi};
use super::resident_id::birthdate_of;
use super::{
    ColumnMap, Field, Key, KeySelection, KeyType, Rejection, canonical_bank_card,
    canonical_birthdate, canonical_email, canonical_mobile, canonical_name, canonical_resident_id,
};

/// Keys derived from one record, plus the rejections met.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordKeys {
    /// Distinct keys, in derivation order.
    pub keys: Vec<Key>,
    /// Every rejected value, with the field it came from.
    pub rejections: Vec<(Field, Rejection)>,
}

impl RecordKeys {
    fn push_key(&mut self, key: Key) {
        if !self.keys.contains(&key) {
            self.keys.push(key);
        }
    }
}

/// Most values taken from one multi-value cell; the rest of the cell is one `malformed`
/// rejection. Keeps a record's keys few (their de-duplication is linear per key).
pub const MAX_VALUES_PER_CELL: usize = 16;

type Canonicaliser = fn(&str) -> Result<String, Rejection>;

/// The single-identifier fields and how to canonicalise them.
const STRONG_FIELDS: [(Field, KeyType, Canonicaliser); 4] = [
    (Field::Mobile, KeyType::Mobile, canonical_mobile),
    (
        Field::ResidentId,
        KeyType::ResidentId,
        canonical_resident_id,
    ),
    (Field::BankCard, KeyType::BankCard, canonical_bank_card),
    (Field::Email, KeyType::Email, canonical_email),
];

/// Derive keys from one row's cells (indexed as in the header). A missing,
/// empty or whitespace-only cell is absent, not a rejection. Identifier
/// rejections are recorded even for unselected types so data quality
/// stays visible; name/birthdate ones only when a composite needs them.
pub fn extract(columns: &ColumnMap, cells: &[&str], selection: &KeySelection) -> RecordKeys {
    // Fold first, so full-width separators split and a cell of only invisible characters is
    // absent rather than rejected.
    let cell = |field: Field| {
        columns
            .column(field)
            .and_then(|i| cells.get(i))
            .map(|c| fold(c))
            .filter(|c| !c.is_empty())
    };
    let mut out = RecordKeys::default();
    let found = strong_keys(&cell, selection, &mut out);
    composite_keys(&cell, selection, found, &mut out);
    out
}

/// What the strong identifiers give the composites: canonical mobiles, and birthdates read
/// from resident IDs.
struct Strong {
    mobiles: Vec<String>,
    id_birthdates: Vec<String>,
}

/// The identifier keys (mobile, resident ID, bank card, email) of a row.
fn strong_keys(
    cell: &impl Fn(Field) -> Option<String>,
    selection: &KeySelection,
    out: &mut RecordKeys,
) -> Strong {
    let mut found = Strong {
        mobiles: Vec::new(),
        id_birthdates: Vec::new(),
    };
    for (field, key_type, canonical) in STRONG_FIELDS {
        let Some(raw) = cell(field) else { continue };
        let mut parts = split_multi(&raw);
        for part in parts.by_ref().take(MAX_VALUES_PER_CELL) {
            match canonical(part) {
                Ok(value) => {
                    match key_type {
                        KeyType::Mobile => found.mobiles.push(value.clone()),
                        KeyType::ResidentId => {
                            let date = birthdate_of(&value).map(str::to_owned);
                            found.id_birthdates.extend(date);
                        }
                        _ => {}
                    }
                    if selection.contains(key_type) {
                        out.push_key(Key::from_canonical(key_type, value));
                    }
                }
                Err(r) => out.rejections.push((field, r)),
            }
        }
        if parts.next().is_some() {
            // No person has this many numbers: a hostile or broken cell, not more keys.
            out.rejections.push((field, Rejection::Malformed));
        }
    }
    found
}

/// The name composites (name + birthdate, name + mobile), when selected.
fn composite_keys(
    cell: &impl Fn(Field) -> Option<String>,
    selection: &KeySelection,
    found: Strong,
    out: &mut RecordKeys,
) {
    let want_nb = selection.contains(KeyType::NameBirthdate);
    let want_nm = selection.contains(KeyType::NameMobile);
    if !(want_nb || want_nm) {
        return;
    }
    let name = match cell(Field::Name).as_deref().map(canonical_name) {
        Some(Ok(name)) => name,
        Some(Err(r)) => return out.rejections.push((Field::Name, r)),
        None => return,
    };
    if want_nb {
        let from_field = match cell(Field::Birthdate).as_deref().map(canonical_birthdate) {
            Some(Ok(d)) => Some(d),
            Some(Err(r)) => {
                out.rejections.push((Field::Birthdate, r));
                None
            }
            None => None,
        };
        let dates = match from_field {
            Some(d) => vec![d],
            None => found.id_birthdates,
        };
        for d in dates {
            out.push_key(Key::composite(KeyType::NameBirthdate, &name, &d));
        }
    }
    if want_nm {
        for m in found.mobiles {
            out.push_key(Key::composite(KeyType::NameMobile, &name, &m));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn values(r: &RecordKeys) -> Vec<(KeyType, &str)> {
        r.keys.iter().map(|k| (k.key_type(), k.value())).collect()
    }

    const HEADERS: [&str; 7] = [
        "姓名",
        "手机",
        "身份证号",
        "银行卡号",
        "邮箱",
        "生日",
        "地址",
    ];

    #[test]
    fn cells_are_folded_before_splitting() {
        let cols = ColumnMap::detect(&["手机", "邮箱"]);
        // A full-width slash separates two numbers; a cell of only a BOM is absent.
        let r = extract(
            &cols,
            &["13800138000／13912345678", "\u{FEFF}\u{200B}"],
            &KeySelection::default(),
        );
        assert_eq!(
            values(&r),
            [
                (KeyType::Mobile, "13800138000"),
                (KeyType::Mobile, "13912345678")
            ]
        );
        assert!(r.rejections.is_empty());
    }

    #[test]
    fn strong_keys_with_multi_values() {
        let cols = ColumnMap::detect(&HEADERS);
        let row = [
            "张 慧",
            "138-0013-8000；+86 139 0000 0000, 13800138000",
            "11010519491231002x",
            "",
            "A@QQ.com",
            "1949-12-31",
            "北京市, 朝阳区",
        ];
        let r = extract(&cols, &row, &KeySelection::default());
        assert_eq!(
            values(&r),
            [
                (KeyType::Mobile, "13800138000"),
                (KeyType::Mobile, "13900000000"),
                (KeyType::ResidentId, "11010519491231002X"),
                (KeyType::Email, "a@qq.com"),
            ]
        );
        assert!(r.rejections.is_empty());
    }

    #[test]
    fn absent_cells_and_short_rows() {
        let cols = ColumnMap::detect(&HEADERS);
        let r = extract(&cols, &["张慧", " \u{3000}"], &KeySelection::all());
        assert_eq!(r, RecordKeys::default());
        let r = extract(
            &ColumnMap::default(),
            &["13800138000"],
            &KeySelection::all(),
        );
        assert_eq!(r, RecordKeys::default());
    }

    #[test]
    fn rejections_recorded_even_when_unselected() {
        let cols = ColumnMap::detect(&HEADERS);
        let row = [
            "张慧",
            "12345/13800138000",
            "110105194912310021",
            "4111 1111 1111 1112",
            "bad",
            "",
            "",
        ];
        let sel = KeySelection::only(&[KeyType::Mobile]);
        let r = extract(&cols, &row, &sel);
        assert_eq!(values(&r), [(KeyType::Mobile, "13800138000")]);
        assert_eq!(
            r.rejections,
            [
                (Field::Mobile, Rejection::WrongLength),
                (Field::ResidentId, Rejection::BadCheckDigit),
                (Field::BankCard, Rejection::BadLuhn),
                (Field::Email, Rejection::Malformed),
            ]
        );
    }

    #[test]
    fn composites() {
        let cols = ColumnMap::detect(&HEADERS);
        let row = [
            "张 慧",
            "13800138000/13900000000",
            "11010519491231002X",
            "",
            "",
            "1950年1月2日",
            "",
        ];
        let sel = KeySelection::only(&[KeyType::NameBirthdate, KeyType::NameMobile]);
        let r = extract(&cols, &row, &sel);
        assert_eq!(
            values(&r),
            [
                (KeyType::NameBirthdate, "张慧|19500102"),
                (KeyType::NameMobile, "张慧|13800138000"),
                (KeyType::NameMobile, "张慧|13900000000"),
            ]
        );

        // Bad birthdate field: rejected, falls back to the resident ID.
        let row = ["张慧", "", "11010519491231002X", "", "", "不详", ""];
        let r = extract(&cols, &row, &sel);
        assert_eq!(values(&r), [(KeyType::NameBirthdate, "张慧|19491231")]);
        assert_eq!(r.rejections, [(Field::Birthdate, Rejection::BadDate)]);

        // No birthdate column at all.
        let cols2 = ColumnMap::detect(&["name", "id_card"]);
        let r = extract(&cols2, &["Li Lei", "110105491231002"], &KeySelection::all());
        assert_eq!(
            values(&r),
            [
                (KeyType::ResidentId, "11010519491231002X"),
                (KeyType::NameBirthdate, "li lei|19491231"),
            ]
        );
    }

    #[test]
    fn bad_name_only_rejected_for_composites() {
        let cols = ColumnMap::detect(&HEADERS);
        let row = ["张3", "13800138000", "", "", "", "", ""];
        let r = extract(&cols, &row, &KeySelection::strong());
        assert!(r.rejections.is_empty());
        let r = extract(&cols, &row, &KeySelection::all());
        assert_eq!(values(&r), [(KeyType::Mobile, "13800138000")]);
        assert_eq!(r.rejections, [(Field::Name, Rejection::BadCharacter)]);
    }

    #[test]
    fn name_and_birthdate_not_split() {
        let cols = ColumnMap::detect(&["姓名", "出生日期"]);
        let r = extract(&cols, &["张,慧", "1949/12/31"], &KeySelection::all());
        // Name and birthdate cells are never split into several values.
        assert_eq!(values(&r), [(KeyType::NameBirthdate, "张,慧|19491231")]);
    }

    #[test]
    fn dedup_within_record() {
        let cols = ColumnMap::detect(&["mobile", "phone"]);
        let r = extract(
            &cols,
            &["13800138000; 138 0013 8000"],
            &KeySelection::default(),
        );
        assert_eq!(values(&r), [(KeyType::Mobile, "13800138000")]);
    }

    proptest! {
        #[test]
        fn never_panics(cells in prop::collection::vec(any::<String>(), 0..9), cols in prop::collection::vec(0usize..10, 7)) {
            let mut map = ColumnMap::default();
            for (f, c) in Field::ALL.into_iter().zip(cols) {
                map.set(f, c);
            }
            let cells: Vec<&str> = cells.iter().map(String::as_str).collect();
            let r = extract(&map, &cells, &KeySelection::all());
            let mut keys = r.keys.clone();
            keys.sort();
            keys.dedup();
            prop_assert_eq!(keys.len(), r.keys.len());
        }
    }

    #[test]
    fn a_cell_with_too_many_values_gives_sixteen_keys_and_one_rejection() {
        let cells: Vec<String> = (0..1000).map(|i| format!("1380000{i:04}")).collect();
        let cell = cells.join(";");
        let map = ColumnMap::detect(&["mobile"]);
        let keys = extract(&map, &[cell.as_str()], &KeySelection::all());
        assert_eq!(keys.keys.len(), MAX_VALUES_PER_CELL);
        assert_eq!(keys.rejections, [(Field::Mobile, Rejection::Malformed)]);
    }
}

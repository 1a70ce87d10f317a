//! The querier's keys, row by row: stored flat (one byte arena per key type, no per-key heap
//! object) and deduplicated by sorting when the query is blinded.

use std::collections::BTreeMap;

use rayon::prelude::*;

use crate::ident::{Key, KeyType};

/// Keys of one type, in arrival order, duplicates included.
#[derive(Debug, Default, Clone)]
pub(crate) struct TypeKeys {
    arena: Vec<u8>,
    ends: Vec<usize>,
}

impl TypeKeys {
    fn push(&mut self, value: &str) -> usize {
        self.arena.extend_from_slice(value.as_bytes());
        self.ends.push(self.arena.len());
        self.ends.len() - 1
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(crate) fn value(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.arena[start..self.ends[i]]
    }

    /// Distinct values in ascending byte order (as indices of their first raw key), and for
    /// each raw key its index among them. Indices are `u32` (the query caps keys per type at
    /// `u32::MAX` before this runs): 8 bytes per key in all, no reference per key.
    pub(crate) fn dedup(&self) -> (Vec<u32>, Vec<u32>) {
        let mut order: Vec<u32> = (0..self.len() as u32).collect();
        order.par_sort_unstable_by(|&a, &b| self.value(a as usize).cmp(self.value(b as usize)));
        let mut distinct: Vec<u32> = Vec::new();
        let mut raw_to_distinct = vec![0u32; self.len()];
        for i in order {
            let v = self.value(i as usize);
            if distinct.last().map(|&d| self.value(d as usize)) != Some(v) {
                distinct.push(i);
            }
            raw_to_distinct[i as usize] = (distinct.len() - 1) as u32;
        }
        (distinct, raw_to_distinct)
    }
}

/// A querier's input: rows, each with zero or more canonical keys. Row indices are 0-based in
/// the order of [`QueryKeys::add_row`]; rows without keys still take an index, so the caller can
/// map results back to its file.
#[derive(Debug, Default, Clone)]
pub struct QueryKeys {
    pub(crate) types: BTreeMap<KeyType, TypeKeys>,
    /// For each row, the end of its run in `row_keys`.
    pub(crate) row_ends: Vec<usize>,
    /// `(type, index among that type's raw keys)` for every key of every row.
    pub(crate) row_keys: Vec<(KeyType, u32)>,
}

impl QueryKeys {
    /// No rows yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one row and returns its index.
    pub fn add_row(&mut self, keys: &[Key]) -> u64 {
        for k in keys {
            let raw = self.types.entry(k.key_type()).or_default().push(k.value());
            // More than 4 billion keys of one type are refused when the query is blinded.
            self.row_keys
                .push((k.key_type(), u32::try_from(raw).unwrap_or(u32::MAX)));
        }
        self.row_ends.push(self.row_keys.len());
        (self.row_ends.len() - 1) as u64
    }

    /// Rows added.
    pub fn rows(&self) -> u64 {
        self.row_ends.len() as u64
    }

    /// Keys added per type, duplicates included.
    pub fn raw_counts(&self) -> BTreeMap<KeyType, u64> {
        self.types
            .iter()
            .map(|(k, t)| (*k, t.len() as u64))
            .collect()
    }

    /// The keys of row `r` as `(type, raw index)`.
    pub(crate) fn row(&self, r: usize) -> &[(KeyType, u32)] {
        let start = if r == 0 { 0 } else { self.row_ends[r - 1] };
        &self.row_keys[start..self.row_ends[r]]
    }
}

//! `psi_local`: both parties of one PSI run in this process, through the same sessions and wire
//! encoding as the node (`suyuan_protocol::psi::run_local`).

use std::collections::BTreeMap;
use std::sync::Arc;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use suyuan_protocol::ident::{Key, KeyType};
use suyuan_protocol::psi::{EpochBuilder, Holder, Query, QueryKeys, QueryMode, run_local};

use crate::errors::PsiError;
use crate::ident::unknown_key_type;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(psi_local, m)?)?;
    Ok(())
}

/// One refused value: which side, which row (0-based), which key type, why.
struct Rejected {
    side: &'static str,
    row: usize,
    key_type: KeyType,
    reason: &'static str,
}

/// The keys of each row of `rows` (an iterable of mappings from key type to a value or a
/// sequence of values). Empty values are absent; invalid ones are listed in `rejected`.
fn read_rows(
    side: &'static str,
    rows: &Bound<'_, PyAny>,
    rejected: &mut Vec<Rejected>,
) -> PyResult<Vec<Vec<Key>>> {
    let mut out = Vec::new();
    for (row, item) in rows.try_iter()?.enumerate() {
        let item = item?;
        let items = item.call_method0("items").map_err(|_| {
            PyTypeError::new_err(format!(
                "{side}_rows[{row}]: expected a mapping from key type to value, got {}",
                type_name(&item)
            ))
        })?;
        let mut keys = Vec::new();
        for pair in items.try_iter()? {
            let (name, values): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair?.extract()?;
            let name: String = name.extract().map_err(|_| {
                PyTypeError::new_err(format!(
                    "{side}_rows[{row}]: a key type must be a str, got {}",
                    type_name(&name)
                ))
            })?;
            let t = name.parse::<KeyType>().map_err(|_| {
                PyValueError::new_err(format!("{side}_rows[{row}]: {}", unknown_key_type(&name)))
            })?;
            for value in values_of(&values).map_err(|got| {
                PyTypeError::new_err(format!(
                    "{side}_rows[{row}][{name:?}]: expected a str or a sequence of str, got {got}"
                ))
            })? {
                if value.trim().is_empty() {
                    continue;
                }
                match Key::parse(t, &value) {
                    Ok(k) => keys.push(k),
                    Err(why) => rejected.push(Rejected {
                        side,
                        row,
                        key_type: t,
                        reason: why.as_str(),
                    }),
                }
            }
        }
        out.push(keys);
    }
    Ok(out)
}

fn type_name(x: &Bound<'_, PyAny>) -> String {
    x.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// A value, or each value of a sequence of values; `Err` names the offending type.
fn values_of(v: &Bound<'_, PyAny>) -> Result<Vec<String>, String> {
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(vec![s.to_string()]);
    }
    if v.is_none() || v.cast::<pyo3::types::PyBytes>().is_ok() {
        return Err(type_name(v));
    }
    let iter = v.try_iter().map_err(|_| type_name(v))?;
    iter.map(|x| {
        let x = x.map_err(|_| type_name(v))?;
        x.cast::<PyString>()
            .map(|s| s.to_string())
            .map_err(|_| format!("a sequence holding {}", type_name(&x)))
    })
    .collect()
}

fn counts<'py>(py: Python<'py>, m: &BTreeMap<KeyType, u64>) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (t, n) in m {
        d.set_item(t.as_str(), n)?;
    }
    Ok(d)
}

#[pyfunction]
#[pyo3(signature = (holder_rows, querier_rows, mode="count"))]
fn psi_local<'py>(
    py: Python<'py>,
    holder_rows: &Bound<'py, PyAny>,
    querier_rows: &Bound<'py, PyAny>,
    mode: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let mode: QueryMode = mode.parse().map_err(|_| {
        PyValueError::new_err(format!("unknown mode {mode:?} (\"count\" or \"matches\")"))
    })?;
    let mut rejected = Vec::new();
    let holder_keys = read_rows("holder", holder_rows, &mut rejected)?;
    let querier_keys = read_rows("querier", querier_rows, &mut rejected)?;
    let result = py
        .detach(|| {
            let mut rng = rand::rng();
            let mut epoch = EpochBuilder::new(&mut rng);
            for keys in &holder_keys {
                epoch.add(keys);
            }
            let holder = Holder::new(Arc::new(epoch.finish()));
            let mut dump = QueryKeys::new();
            for keys in &querier_keys {
                dump.add_row(keys);
            }
            let query = Arc::new(Query::blind(&mut rng, dump)?);
            run_local(&holder, &query, mode, &mut rng)
        })
        .map_err(|e| PsiError::new_err(format!("psi_local ({mode} mode): {e}")))?;

    let out = PyDict::new(py);
    out.set_item("mode", mode.as_str())?;
    out.set_item("tag_len", result.tag_len)?;
    out.set_item("querier_rows", querier_keys.len())?;
    out.set_item("querier_keys", counts(py, &result.query_keys)?)?;
    out.set_item("holder_keys", counts(py, &result.holder_keys)?)?;
    out.set_item("matched_keys", counts(py, &result.matched_keys)?)?;
    match &result.matched_rows {
        Some(rows) => out.set_item("matched_rows", PyList::new(py, rows)?)?,
        None => out.set_item("matched_rows", py.None())?,
    }
    let rej = PyList::empty(py);
    for r in &rejected {
        let d = PyDict::new(py);
        d.set_item("side", r.side)?;
        d.set_item("row", r.row)?;
        d.set_item("key_type", r.key_type.as_str())?;
        d.set_item("reason", r.reason)?;
        rej.append(d)?;
    }
    out.set_item("rejected", rej)?;
    Ok(out)
}

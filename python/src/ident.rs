//! The identifier canonicalisers: the same code the node runs on every CSV cell.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use suyuan_protocol::ident::{self, Key, KeyType, Rejection};

use crate::errors::invalid_identifier;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let key_types: Vec<&str> = KeyType::ALL.iter().map(|t| t.as_str()).collect();
    m.add("KEY_TYPES", pyo3::types::PyTuple::new(py, key_types)?)?;
    let reasons = PyDict::new(py);
    for r in Rejection::ALL {
        reasons.set_item(r.as_str(), r.to_string())?;
    }
    m.add("REJECTIONS", reasons)?;
    m.add_function(wrap_pyfunction!(canonicalize, m)?)?;
    m.add_function(wrap_pyfunction!(oprf_input, m)?)?;
    m.add_function(wrap_pyfunction!(canonical_mobile, m)?)?;
    m.add_function(wrap_pyfunction!(canonical_resident_id, m)?)?;
    m.add_function(wrap_pyfunction!(canonical_bank_card, m)?)?;
    m.add_function(wrap_pyfunction!(canonical_email, m)?)?;
    m.add_function(wrap_pyfunction!(canonical_name, m)?)?;
    m.add_function(wrap_pyfunction!(canonical_birthdate, m)?)?;
    Ok(())
}

/// A key type by name (`"mobile"`, `"resident_id"`, ...), or a `ValueError` listing them.
fn key_type(name: &str) -> PyResult<KeyType> {
    name.parse::<KeyType>()
        .map_err(|_| PyValueError::new_err(unknown_key_type(name)))
}

/// `unknown key type "phone" (known: mobile, ...)`.
pub(crate) fn unknown_key_type(name: &str) -> String {
    let known: Vec<&str> = KeyType::ALL.iter().map(|t| t.as_str()).collect();
    format!("unknown key type {name:?} (known: {})", known.join(", "))
}

/// Parses `value` as a key of `kind`, raising `InvalidIdentifier` with the reason.
fn parse_key(py: Python<'_>, kind: &str, value: &str) -> PyResult<Key> {
    let t = key_type(kind)?;
    Key::parse(t, value).map_err(|why| invalid_identifier(py, t.as_str(), why))
}

#[pyfunction]
fn canonicalize(py: Python<'_>, key_type: &str, value: &str) -> PyResult<String> {
    Ok(parse_key(py, key_type, value)?.value().to_owned())
}

#[pyfunction]
fn oprf_input<'py>(py: Python<'py>, key_type: &str, value: &str) -> PyResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(
        py,
        &parse_key(py, key_type, value)?.oprf_input(),
    ))
}

fn field(py: Python<'_>, kind: &str, r: Result<String, Rejection>) -> PyResult<String> {
    r.map_err(|why| invalid_identifier(py, kind, why))
}

#[pyfunction]
fn canonical_mobile(py: Python<'_>, value: &str) -> PyResult<String> {
    field(py, "mobile", ident::canonical_mobile(value))
}

#[pyfunction]
fn canonical_resident_id(py: Python<'_>, value: &str) -> PyResult<String> {
    field(py, "resident_id", ident::canonical_resident_id(value))
}

#[pyfunction]
fn canonical_bank_card(py: Python<'_>, value: &str) -> PyResult<String> {
    field(py, "bank_card", ident::canonical_bank_card(value))
}

#[pyfunction]
fn canonical_email(py: Python<'_>, value: &str) -> PyResult<String> {
    field(py, "email", ident::canonical_email(value))
}

#[pyfunction]
fn canonical_name(py: Python<'_>, value: &str) -> PyResult<String> {
    field(py, "name", ident::canonical_name(value))
}

#[pyfunction]
fn canonical_birthdate(py: Python<'_>, value: &str) -> PyResult<String> {
    field(py, "birthdate", ident::canonical_birthdate(value))
}

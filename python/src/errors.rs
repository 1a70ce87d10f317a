//! The package's exceptions. Each carries a stable `reason` code besides its message, so a
//! script can count or branch on it without parsing text.

use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use suyuan_protocol::ident::Rejection;

create_exception!(
    suyuan,
    InvalidIdentifier,
    PyValueError,
    "A value that is not a valid identifier of its kind; `kind` and `reason` say which and why."
);
create_exception!(
    suyuan,
    OprfError,
    PyValueError,
    "An RFC 9497 operation refused its input (`reason`: invalid_element, verify_failed, ...)."
);
create_exception!(
    suyuan,
    PsiError,
    PyRuntimeError,
    "A PSI run that could not complete; the message says which step and why."
);

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("InvalidIdentifier", py.get_type::<InvalidIdentifier>())?;
    m.add("OprfError", py.get_type::<OprfError>())?;
    m.add("PsiError", py.get_type::<PsiError>())?;
    Ok(())
}

/// `InvalidIdentifier("mobile: wrong length", kind="mobile", reason="wrong_length")`.
pub(crate) fn invalid_identifier(py: Python<'_>, kind: &str, why: Rejection) -> PyErr {
    let err = InvalidIdentifier::new_err(format!("{kind}: {why}"));
    let value = err.value(py);
    // Setting attributes on a fresh exception instance cannot fail short of memory exhaustion;
    // if it did, the exception still carries its message.
    let _ = value.setattr("kind", kind);
    let _ = value.setattr("reason", why.as_str());
    err
}

/// The stable code of an OPRF failure.
fn oprf_reason(e: &suyuan_protocol::oprf::OprfError) -> &'static str {
    use suyuan_protocol::oprf::OprfError as E;
    match e {
        E::InvalidInput => "invalid_input",
        E::InvalidElement => "invalid_element",
        E::InvalidScalar => "invalid_scalar",
        E::VerifyFailed => "verify_failed",
        E::DeriveKeyPair => "derive_key_pair",
        E::InputTooLong => "input_too_long",
        E::InvalidDst(_) => "invalid_dst",
        E::LengthMismatch { .. } => "length_mismatch",
        _ => "other",
    }
}

/// An `OprfError` naming what failed (`what`: "blind", "finalize", ...).
pub(crate) fn oprf_error(
    py: Python<'_>,
    what: &str,
    e: &suyuan_protocol::oprf::OprfError,
) -> PyErr {
    let err = OprfError::new_err(format!("{what}: {e}"));
    let _ = err.value(py).setattr("reason", oprf_reason(e));
    err
}

/// An `OprfError` for an argument of the wrong size, before any curve work.
pub(crate) fn wrong_length(py: Python<'_>, what: &str, expected: usize, got: usize) -> PyErr {
    let err = OprfError::new_err(format!("{what}: {got} bytes, expected {expected}"));
    let _ = err.value(py).setattr("reason", "wrong_length");
    err
}

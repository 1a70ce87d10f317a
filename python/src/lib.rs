//! `suyuan._native`: the Python face of `suyuan-protocol`. The package `suyuan` (python/suyuan)
//! re-exports it with docstrings and type hints; the stubs are `suyuan/_native.pyi`.
//!
//! Secrets cross into Python as `bytes`, which Python cannot wipe; inside Rust they live in
//! zeroizing buffers as everywhere else in suyuan (python/README.md says so).

mod errors;
mod ident;
mod oprf;
mod psi;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    ident::register(m)?;
    oprf::register(m)?;
    psi::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

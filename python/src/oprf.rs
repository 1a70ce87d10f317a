//! RFC 9497 on ristretto255-SHA512, modes OPRF and VOPRF: the library's own client and server,
//! the ones checked byte for byte against Appendix A.1.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use suyuan_protocol::oprf::{
    self, Blind, ELEMENT_LEN, Element, Mode, OprfClient, OprfServer, Proof, PublicKey, SCALAR_LEN,
    SecretKey, VoprfClient, VoprfServer,
};
use zeroize::Zeroizing;

use crate::errors::{oprf_error, wrong_length};

/// A Python list of `bytes`, one per element, scalar or output.
type ByteList<'py> = Vec<Bound<'py, PyBytes>>;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(oprf_derive_key_pair, m)?)?;
    m.add_function(wrap_pyfunction!(oprf_generate_key, m)?)?;
    m.add_function(wrap_pyfunction!(oprf_public_key, m)?)?;
    m.add_function(wrap_pyfunction!(oprf_blind, m)?)?;
    m.add_function(wrap_pyfunction!(oprf_blind_evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(voprf_blind_evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(oprf_finalize, m)?)?;
    m.add_function(wrap_pyfunction!(voprf_finalize, m)?)?;
    m.add_function(wrap_pyfunction!(oprf_evaluate, m)?)?;
    Ok(())
}

fn mode(name: &str) -> PyResult<Mode> {
    match name {
        "oprf" => Ok(Mode::Oprf),
        "voprf" => Ok(Mode::Voprf),
        other => Err(PyValueError::new_err(format!(
            "unknown mode {other:?} (suyuan implements \"oprf\" and \"voprf\"; not POPRF)"
        ))),
    }
}

fn fixed<const N: usize>(py: Python<'_>, what: &str, b: &[u8]) -> PyResult<[u8; N]> {
    b.try_into().map_err(|_| wrong_length(py, what, N, b.len()))
}

fn secret_key(py: Python<'_>, b: &[u8]) -> PyResult<SecretKey> {
    let bytes = Zeroizing::new(fixed::<SCALAR_LEN>(py, "secret key", b)?);
    SecretKey::from_bytes(&bytes).map_err(|e| oprf_error(py, "secret key", &e))
}

fn elements(py: Python<'_>, what: &str, list: &[Bound<'_, PyBytes>]) -> PyResult<Vec<Element>> {
    list.iter()
        .enumerate()
        .map(|(i, b)| Ok(Element(fixed(py, &format!("{what}[{i}]"), b.as_bytes())?)))
        .collect()
}

fn blinds(py: Python<'_>, list: &[Bound<'_, PyBytes>]) -> PyResult<Vec<Blind>> {
    list.iter()
        .enumerate()
        .map(|(i, b)| {
            let what = format!("blinds[{i}]");
            let bytes = Zeroizing::new(fixed::<SCALAR_LEN>(py, &what, b.as_bytes())?);
            Blind::from_bytes(&bytes).map_err(|e| oprf_error(py, &what, &e))
        })
        .collect()
}

fn byte_list<'py, T: AsRef<[u8]>>(py: Python<'py>, items: &[T]) -> ByteList<'py> {
    items.iter().map(|x| PyBytes::new(py, x.as_ref())).collect()
}

fn slices<'a>(list: &'a [Bound<'_, PyBytes>]) -> Vec<&'a [u8]> {
    list.iter().map(|b| b.as_bytes()).collect()
}

#[pyfunction]
fn oprf_derive_key_pair<'py>(
    py: Python<'py>,
    seed: &[u8],
    info: &[u8],
    mode_name: &str,
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let seed = Zeroizing::new(fixed::<32>(py, "seed", seed)?);
    let (sk, pk) = oprf::derive_key_pair(mode(mode_name)?, &seed, info)
        .map_err(|e| oprf_error(py, "derive_key_pair", &e))?;
    Ok((
        PyBytes::new(py, &*sk.to_bytes()),
        PyBytes::new(py, &pk.to_element().0),
    ))
}

#[pyfunction]
fn oprf_generate_key(py: Python<'_>) -> Bound<'_, PyBytes> {
    PyBytes::new(py, &*SecretKey::random(&mut rand::rng()).to_bytes())
}

#[pyfunction]
fn oprf_public_key<'py>(py: Python<'py>, secret_key_bytes: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let sk = secret_key(py, secret_key_bytes)?;
    Ok(PyBytes::new(py, &sk.public_key().to_element().0))
}

#[pyfunction]
#[pyo3(signature = (inputs, mode_name, given_blinds=None))]
fn oprf_blind<'py>(
    py: Python<'py>,
    inputs: ByteList<'py>,
    mode_name: &str,
    given_blinds: Option<ByteList<'py>>,
) -> PyResult<(ByteList<'py>, ByteList<'py>)> {
    let m = mode(mode_name)?;
    let ins = slices(&inputs);
    let bl = match given_blinds {
        Some(given) => blinds(py, &given)?,
        None => {
            let mut rng = rand::rng();
            ins.iter().map(|_| Blind::random(&mut rng)).collect()
        }
    };
    let blinded = py
        .detach(|| match m {
            Mode::Oprf => OprfClient::blind_batch_with(&ins, &bl),
            Mode::Voprf => VoprfClient::blind_batch_with(&ins, &bl),
        })
        .map_err(|e| oprf_error(py, "blind", &e))?;
    // Each blind goes from a zeroizing buffer straight into its Python bytes.
    let blind_bytes: ByteList<'py> = bl
        .iter()
        .map(|b| PyBytes::new(py, b.to_bytes().as_slice()))
        .collect();
    let blinded_bytes: Vec<[u8; ELEMENT_LEN]> = blinded.iter().map(|e| e.0).collect();
    Ok((blind_bytes, byte_list(py, &blinded_bytes)))
}

#[pyfunction]
fn oprf_blind_evaluate<'py>(
    py: Python<'py>,
    secret_key_bytes: &[u8],
    blinded: ByteList<'py>,
) -> PyResult<ByteList<'py>> {
    let server = OprfServer::new(secret_key(py, secret_key_bytes)?);
    let blinded = elements(py, "blinded", &blinded)?;
    let out = py
        .detach(|| server.blind_evaluate_batch(&blinded))
        .map_err(|e| oprf_error(py, "blind_evaluate", &e))?;
    Ok(byte_list(py, &out.iter().map(|e| e.0).collect::<Vec<_>>()))
}

#[pyfunction]
#[pyo3(signature = (secret_key_bytes, blinded, nonce=None))]
fn voprf_blind_evaluate<'py>(
    py: Python<'py>,
    secret_key_bytes: &[u8],
    blinded: ByteList<'py>,
    nonce: Option<&[u8]>,
) -> PyResult<(ByteList<'py>, Bound<'py, PyBytes>)> {
    let server = VoprfServer::new(secret_key(py, secret_key_bytes)?);
    let blinded = elements(py, "blinded", &blinded)?;
    let nonce = nonce
        .map(|n| fixed::<SCALAR_LEN>(py, "nonce", n).map(Zeroizing::new))
        .transpose()?;
    let (out, proof) = py
        .detach(|| match &nonce {
            Some(n) => server.blind_evaluate_batch_with_nonce(&blinded, n),
            None => server.blind_evaluate_batch(&mut rand::rng(), &blinded),
        })
        .map_err(|e| oprf_error(py, "blind_evaluate", &e))?;
    Ok((
        byte_list(py, &out.iter().map(|e| e.0).collect::<Vec<_>>()),
        PyBytes::new(py, &proof.to_bytes()),
    ))
}

#[pyfunction]
fn oprf_finalize<'py>(
    py: Python<'py>,
    inputs: ByteList<'py>,
    given_blinds: ByteList<'py>,
    evaluated: ByteList<'py>,
) -> PyResult<ByteList<'py>> {
    let ins = slices(&inputs);
    let bl = blinds(py, &given_blinds)?;
    let ev = elements(py, "evaluated", &evaluated)?;
    let out = py
        .detach(|| OprfClient::finalize_batch(&ins, &bl, &ev))
        .map_err(|e| oprf_error(py, "finalize", &e))?;
    Ok(byte_list(py, &out))
}

#[pyfunction]
fn voprf_finalize<'py>(
    py: Python<'py>,
    public_key: &[u8],
    inputs: ByteList<'py>,
    given_blinds: ByteList<'py>,
    blinded: ByteList<'py>,
    evaluated: ByteList<'py>,
    proof: &[u8],
) -> PyResult<ByteList<'py>> {
    let pk = PublicKey::from_element(&Element(fixed(py, "public key", public_key)?))
        .map_err(|e| oprf_error(py, "public key", &e))?;
    let proof = Proof::from_bytes(&fixed(py, "proof", proof)?);
    let ins = slices(&inputs);
    let bl = blinds(py, &given_blinds)?;
    let bd = elements(py, "blinded", &blinded)?;
    let ev = elements(py, "evaluated", &evaluated)?;
    let out = py
        .detach(|| VoprfClient::new(pk).finalize_batch(&ins, &bl, &bd, &ev, &proof))
        .map_err(|e| oprf_error(py, "finalize", &e))?;
    Ok(byte_list(py, &out))
}

#[pyfunction]
fn oprf_evaluate<'py>(
    py: Python<'py>,
    secret_key_bytes: &[u8],
    input: &[u8],
    mode_name: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    let sk = secret_key(py, secret_key_bytes)?;
    let out = match mode(mode_name)? {
        Mode::Oprf => OprfServer::new(sk).evaluate(input),
        Mode::Voprf => VoprfServer::new(sk).evaluate(input),
    }
    .map_err(|e| oprf_error(py, "evaluate", &e))?;
    Ok(PyBytes::new(py, &out))
}

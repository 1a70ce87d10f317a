//! The UDP sockets under our QUIC endpoints, with room for a burst.
//!
//! A holder evaluating on every core reads its socket late; with the kernel's default receive
//! buffer (about 200 KiB) a querier's burst of blinded elements overflows it, and every dropped
//! datagram is sent again (12% of upstream packets at 10^5 keys on loopback). A few MiB of
//! buffer absorbs the burst. The kernel caps the request at `net.core.rmem_max` /
//! `wmem_max`; a smaller buffer than asked is not an error, only slower.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Bytes asked for each socket's receive and send buffers.
pub const SOCKET_BUFFER_BYTES: usize = 8 << 20;

/// A bound UDP socket with enlarged buffers; an IPv6 wildcard also accepts IPv4 where the
/// system allows it.
pub fn bind(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6()
        && addr.ip().is_unspecified()
        && let Err(e) = socket.set_only_v6(false)
    {
        tracing::debug!("this socket cannot be dual-stack: {e}");
    }
    if let Err(e) = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES) {
        tracing::debug!("cannot enlarge the UDP receive buffer: {e}");
    }
    if let Err(e) = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES) {
        tracing::debug!("cannot enlarge the UDP send buffer: {e}");
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// What to tell a holder's operator when the kernel granted a receive buffer (as Linux reports
/// it: twice the bytes granted) too small to absorb a querier's burst. In the benchmarks 4 MiB
/// lost nothing and 208 KiB (a common default cap) lost 12% of the upstream; below 1 MiB granted
/// we warn.
pub fn small_buffer_warning(reported: usize) -> Option<String> {
    (reported < SOCKET_BUFFER_BYTES / 4).then(|| {
        format!(
            "the kernel granted a UDP receive buffer of {} KiB (asked for {} KiB): under load, \
             datagrams will be dropped and sent again; raise net.core.rmem_max (docs/operations.md)",
            reported / 2 / 1024,
            SOCKET_BUFFER_BYTES / 1024
        )
    })
}

/// A QUIC endpoint on [`bind`]'s socket (a server when given its configuration), and
/// [`small_buffer_warning`] for its receive buffer.
pub fn endpoint(
    addr: SocketAddr,
    server: Option<quinn::ServerConfig>,
) -> io::Result<(quinn::Endpoint, Option<String>)> {
    let runtime =
        quinn::default_runtime().ok_or_else(|| io::Error::other("no async runtime is running"))?;
    let socket = bind(addr)?;
    let warning = socket2::SockRef::from(&socket)
        .recv_buffer_size()
        .ok()
        .and_then(small_buffer_warning);
    let endpoint = quinn::Endpoint::new(quinn::EndpointConfig::default(), server, socket, runtime)?;
    Ok((endpoint, warning))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_enlarged_up_to_the_system_cap() {
        let socket = Socket::from(bind("127.0.0.1:0".parse().unwrap()).unwrap());
        let plain = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        assert!(socket.recv_buffer_size().unwrap() >= plain.recv_buffer_size().unwrap());
        // Linux grants min(request, rmem_max) and reports twice that (its bookkeeping).
        if let Ok(cap) = std::fs::read_to_string("/proc/sys/net/core/rmem_max") {
            let cap: usize = cap.trim().parse().unwrap();
            assert!(socket.recv_buffer_size().unwrap() >= SOCKET_BUFFER_BYTES.min(cap));
        }
    }

    #[test]
    fn a_small_granted_buffer_is_named_with_the_setting_to_raise() {
        // Linux reports twice what it grants: 212992 is the usual 208 KiB cap.
        assert_eq!(
            small_buffer_warning(2 * 212_992).as_deref(),
            Some(
                "the kernel granted a UDP receive buffer of 208 KiB (asked for 8192 KiB): under \
                 load, datagrams will be dropped and sent again; raise net.core.rmem_max \
                 (docs/operations.md)"
            )
        );
        assert_eq!(small_buffer_warning(2 * (4 << 20)), None);
        assert_eq!(small_buffer_warning(2 * (1 << 20)), None);
    }
}

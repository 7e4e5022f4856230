//! Start-up stage: listen addresses (`server.bind`, `admin.bind`) — an IP
//! address and port, or `localhost:PORT` for the IPv4 loopback. Other host
//! names are refused: a listener must not depend on a DNS answer.

use std::net::{Ipv4Addr, SocketAddr};

use serde::{Deserialize, Deserializer, de::Error as _};

/// serde `deserialize_with`: a listen address.
pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    parse(&text).map_err(D::Error::custom)
}

/// `127.0.0.1:8080`, `0.0.0.0:8080`, `[::]:8080` or `localhost:8080`.
pub(crate) fn parse(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let refuse = || {
        format!(
            "{text:?} is not a listen address: write IP:PORT (127.0.0.1:8080 for this \
             machine only, 0.0.0.0:8080 or [::]:8080 for every interface) or localhost:PORT"
        )
    };
    match text.rsplit_once(':') {
        Some((host, port)) if host.eq_ignore_ascii_case("localhost") => port
            .parse::<u16>()
            .map(|port| SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .map_err(|_| refuse()),
        _ => Err(refuse()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_addresses_and_localhost() {
        assert_eq!(
            parse("127.0.0.1:8080").unwrap().to_string(),
            "127.0.0.1:8080"
        );
        assert_eq!(parse("[::]:9").unwrap().to_string(), "[::]:9");
        assert_eq!(
            parse("localhost:8080").unwrap().to_string(),
            "127.0.0.1:8080"
        );
        assert_eq!(parse("LOCALHOST:0").unwrap().to_string(), "127.0.0.1:0");
        for bad in ["localhost", "localhost:http", "example.com:80", "8080", ""] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("localhost:PORT"), "{bad}: {e}");
        }
    }
}

//! Record stage, the hash chain: each line ends with `"prev"` (the hash of
//! the line before it) and `"hash"` (SHA-256 of its own text up to, not
//! including, `,"hash":"`). A changed line no longer matches its own hash;
//! a removed, inserted or moved line breaks the next line's `prev`.

use aws_lc_rs::digest::{SHA256, digest};

/// `prev` of the very first line of a log.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What ends every line: `,"hash":"<64 hex>"}`.
pub(crate) const HASH_KEY: &[u8] = b",\"hash\":\"";
const SUFFIX_LEN: usize = HASH_KEY.len() + 64 + 2;

/// Lowercase hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let mut out = [0u8; 64];
    // Cannot fail: a digest is 32 bytes, its hex 64.
    let _ = hex::encode_to_slice(digest(&SHA256, bytes), &mut out);
    // Hex digits are ASCII: this never falls back.
    std::str::from_utf8(&out).unwrap_or_default().to_owned()
}

/// Closes a serialized line (`{...,"prev":"…"}` in `buf[start..]`, no
/// newline yet) with its own hash and a newline; returns the hash.
pub(crate) fn seal_line(buf: &mut Vec<u8>, start: usize) -> String {
    // The serializer ended the object; the hash goes inside it.
    if buf.last() == Some(&b'}') {
        buf.pop();
    }
    let hash = sha256_hex(&buf[start..]);
    buf.extend_from_slice(HASH_KEY);
    buf.extend_from_slice(hash.as_bytes());
    buf.extend_from_slice(b"\"}\n");
    hash
}

/// A line's stated hash and whether its text still matches it.
pub(crate) fn check_line(line: &[u8]) -> Result<String, &'static str> {
    if line.len() < SUFFIX_LEN + 2 || !line.ends_with(b"\"}") {
        return Err("it does not end with its \"hash\" field");
    }
    let at = line.len() - SUFFIX_LEN;
    if &line[at..at + HASH_KEY.len()] != HASH_KEY {
        return Err("it does not end with its \"hash\" field");
    }
    let stated = &line[at + HASH_KEY.len()..line.len() - 2];
    let Ok(stated) = std::str::from_utf8(stated) else {
        return Err("its \"hash\" is not hex");
    };
    if sha256_hex(&line[..at]) != stated {
        return Err("its text does not match its hash: the line was altered");
    }
    Ok(stated.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_lowercase_hex_sha256() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_sealed_line_checks_and_an_altered_one_does_not() {
        let mut buf = b"xx".to_vec();
        buf.extend_from_slice(br#"{"seq":1,"prev":"00"}"#);
        let hash = seal_line(&mut buf, 2);
        let line = &buf[2..buf.len() - 1];
        assert_eq!(check_line(line), Ok(hash));
        let altered = String::from_utf8(line.to_vec())
            .unwrap()
            .replace("\"seq\":1", "\"seq\":2");
        assert!(check_line(altered.as_bytes()).is_err());
        assert!(check_line(b"{\"seq\":1}").is_err());
    }
}

//! Random bytes for what every call or record needs a few of — trace ids,
//! the random part of decision-log ids — drawn from a per-thread pool the
//! OS fills 4 KiB at a time: one `getrandom` call serves hundreds of ids
//! instead of one each. Secrets (tokens, keys, capability ids) do not come
//! from here; they call the OS themselves.

use std::cell::RefCell;

/// Bytes the OS gives at a time.
const POOL: usize = 4096;
/// The most one request may take.
pub const MAX_TAKE: usize = 64;

thread_local! {
    static BYTES: RefCell<(Box<[u8; POOL]>, usize)> =
        RefCell::new((Box::new([0; POOL]), POOL));
}

/// Fills `out` (at most [`MAX_TAKE`] bytes) with random bytes; false, with
/// `out` untouched, if the OS has none to give or `out` is too long.
pub fn fill(out: &mut [u8]) -> bool {
    if out.len() > MAX_TAKE {
        return false;
    }
    BYTES.with_borrow_mut(|(pool, used)| {
        if *used + out.len() > POOL {
            if getrandom::fill(&mut pool[..]).is_err() {
                return false;
            }
            *used = 0;
        }
        let taken = &mut pool[*used..*used + out.len()];
        out.copy_from_slice(taken);
        // Each byte is handed out once.
        taken.fill(0);
        *used += out.len();
        true
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_never_repeated_across_a_refill() {
        let mut seen = std::collections::HashSet::new();
        // Three pools' worth: every refill point is crossed.
        for _ in 0..(3 * POOL / 24) {
            let mut b = [0u8; 24];
            assert!(fill(&mut b));
            assert_ne!(b, [0u8; 24]);
            assert!(seen.insert(b), "a draw came back twice");
        }
        let mut long = [0u8; MAX_TAKE + 1];
        assert!(!fill(&mut long));
        assert_eq!(long, [0u8; MAX_TAKE + 1]);
    }
}

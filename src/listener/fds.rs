//! Start-up for the accept stage: the file descriptors the listeners may
//! use. The soft open-file limit is raised to the hard one, and the agents'
//! listener is capped so that it can never take the descriptors the admin
//! listener, upstream connections and the store need.

/// Descriptors kept for everything that is not a client connection: the
/// store, module files, watchers, JWKS and webhook calls, logs.
const RESERVED: u64 = 128;

/// Raises the soft open-file limit as far as the hard limit allows and
/// returns the soft limit now in force; `None` where it cannot be read.
pub fn raise_open_file_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) => Some(soft),
        Err(e) => {
            tracing::debug!(error = %e, "cannot raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft)
        }
    }
}

/// The agents' connection cap that fits `open_files` descriptors next to
/// the admin listener's `admin_cap`: every agent connection may hold an
/// upstream connection too, so it counts twice.
pub fn fit_agent_cap(configured: usize, open_files: u64, admin_cap: usize) -> usize {
    let admin = u64::try_from(admin_cap).unwrap_or(u64::MAX);
    let budget = open_files.saturating_sub(RESERVED).saturating_sub(admin) / 2;
    let budget = usize::try_from(budget).unwrap_or(usize::MAX).max(1);
    configured.min(budget)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_cap_leaves_room_for_admin_upstreams_and_the_rest() {
        assert_eq!(fit_agent_cap(10_000, 1024, 64), (1024 - 128 - 64) / 2);
        assert_eq!(fit_agent_cap(10_000, 1_048_576, 64), 10_000);
        assert_eq!(fit_agent_cap(10_000, 100, 64), 1, "never zero");
        assert!(raise_open_file_limit().is_some_and(|soft| soft > 0));
    }
}

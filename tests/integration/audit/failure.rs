//! A decision log whose disk fails mid-run: failing closed, calls are
//! refused with `audit_unavailable` until it can be written again; serving,
//! calls go on and every record not written is counted — and the log says
//! so itself. Either way the log verifies afterwards.

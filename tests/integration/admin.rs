//! The admin API: who may call (tokens, client certificates, roles), the
//! task → grant → revoke → complete life through it with its validation
//! errors, approvals answered through it, and the binary's side of it
//! (`admin-token`, config reload, the demo's token, the audit lines).

mod approvals;
mod authz;
mod lifecycle;
mod mtls;
mod serve;

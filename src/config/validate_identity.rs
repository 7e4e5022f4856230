//! Start-up stage: checks of the `[[issuers]]` tables and of each route's
//! `auth` binding to them.

use http::HeaderName;

use super::{Config, IssuerMode};
use crate::identify::issuer::{Error as IssuerError, TrustedIssuer};
use crate::identify::spiffe::SpiffeId;

pub(super) fn check(
    config: &Config,
    issuer_positions: &[usize],
    route_positions: &[usize],
    report: &mut dyn FnMut(&str, String),
) {
    for (issuer, &i) in config.issuers.iter().zip(issuer_positions) {
        let at = |field: &str| format!("issuers[{i}].{field}");
        if !super::validate::valid_name(&issuer.name) {
            report(
                &at("name"),
                format!(
                    "{:?} is not a valid issuer name (1-64 of a-z, 0-9, '-', '_')",
                    issuer.name
                ),
            );
        }
        if issuer.issuer.is_empty() {
            report(
                &at("issuer"),
                "must be the exact `iss` of the issuer's tokens".into(),
            );
        }
        if issuer.mode == IssuerMode::Spiffe {
            for td in &issuer.trust_domains {
                let valid =
                    SpiffeId::parse(&format!("spiffe://{td}")).is_ok_and(|id| id.path.is_empty());
                if !valid {
                    report(
                        &at("trust_domains"),
                        format!("{td:?} is not a valid SPIFFE trust domain"),
                    );
                }
            }
        }
        if issuer.min_refresh_interval.is_zero()
            || issuer.min_refresh_interval > issuer.refresh_interval
        {
            report(
                &at("min_refresh_interval"),
                "must be greater than zero and at most refresh_interval".into(),
            );
        }
        // Built again, with its warnings, when the snapshot is: stay quiet
        // here so that each is logged once.
        let built =
            tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
                TrustedIssuer::build(issuer, None)
            });
        if let Err(e) = built {
            let field = match &e {
                IssuerError::Algorithm(_)
                | IssuerError::AlgorithmNotAllowed(..)
                | IssuerError::HsWithoutSecret => "algorithms",
                IssuerError::HsSecret(_) => "hs_secret",
                IssuerError::KeySource => "jwks_file",
                IssuerError::JwksFile(..) | IssuerError::NoUsableKey(..) => "jwks_file",
                IssuerError::JwksUrl(_) => "jwks_url",
                IssuerError::NoTrustDomain => "trust_domains",
            };
            report(&at(field), e.to_string());
        }
    }
    for (route, &i) in config.routes.iter().zip(route_positions) {
        let Some(auth) = &route.auth else { continue };
        let at = |field: &str| format!("routes[{i}].auth.{field}");
        if auth.issuers.is_empty() {
            report(&at("issuers"), "name at least one issuer".into());
        }
        for name in &auth.issuers {
            if !config.issuers.iter().any(|i| &i.name == name) {
                report(
                    &at("issuers"),
                    format!("issuer {name:?} is not defined in [[issuers]]"),
                );
            }
        }
        if auth.audience.as_deref().is_some_and(str::is_empty) {
            report(&at("audience"), "must not be empty".into());
        }
        let path = route.path.trim_end_matches('/');
        let audience = auth.audience.clone().unwrap_or_else(|| {
            format!(
                "{}{}",
                config.server.base_url(),
                if path.is_empty() { "/" } else { path }
            )
        });
        for issuer in config
            .issuers
            .iter()
            .filter(|i| auth.issuers.contains(&i.name))
        {
            if !issuer.audiences.is_empty() && !issuer.audiences.contains(&audience) {
                report(
                    &at("audience"),
                    format!(
                        "{audience:?} is not among issuer {:?}'s audiences",
                        issuer.name
                    ),
                );
            }
        }
        if let Some(h) = &auth.task_header
            && HeaderName::try_from(h.as_str()).is_err()
        {
            report(
                &at("task_header"),
                format!("{h:?} is not a valid header name"),
            );
        }
    }
}

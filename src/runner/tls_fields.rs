//! The TLS fields of `http` and `tcp` probes (`docs/declarations.md`), read
//! and checked at prepare whether or not TLS is built in, and turned into the
//! probe's [`TlsSetup`] (feature `tls`) once per reset. A host without a
//! system bundle is not the declaration's fault: its runs fail instead.

use std::path::PathBuf;

use crate::decl::{Declaration, Field, FieldError};
#[cfg(feature = "tls")]
use crate::transport::tls::{SetupError, TlsSetup, check_server_name};
use crate::transport::{ClientAuthFiles, TlsOptions};

/// Largest `minCertValidityDays`: ten years.
const MAX_VALIDITY_DAYS: u64 = 3650;

/// The reason for a TLS probe in a build without TLS.
#[cfg(not(feature = "tls"))]
pub(crate) const NOT_BUILT_IN: &str =
    "TLS is not built into this probewheel (it was built without the cargo feature `tls`)";

/// Reads and checks a probe's TLS fields; absent or `null` means the
/// default.
pub(crate) fn tls_options(decl: &Declaration) -> Result<TlsOptions, FieldError> {
    let ca_file = path_field(decl, "caFile")?;
    let server_name = match decl.str_field("tlsServerName")? {
        Some("") => return Err(FieldError::new("tlsServerName", "an empty name")),
        Some(name) => {
            #[cfg(feature = "tls")]
            check_server_name(name).map_err(|e| FieldError::new("tlsServerName", e.to_string()))?;
            Some(name.to_owned())
        }
        None => None,
    };
    let skip_verify = decl.bool_field("tlsSkipVerify")?.unwrap_or(false);
    let min_validity_days = decl
        .u64_in("minCertValidityDays", 0, MAX_VALIDITY_DAYS)?
        .map(|d| u32::try_from(d).expect("bounded to 3650"));
    let client_auth = match (
        path_field(decl, "clientCertFile")?,
        path_field(decl, "clientKeyFile")?,
    ) {
        (Some(cert), Some(key)) => Some(ClientAuthFiles { cert, key }),
        (None, None) => None,
        (Some(_), None) => {
            return Err(FieldError::new(
                "clientKeyFile",
                "missing, while clientCertFile is set: mutual TLS needs the certificate and its key",
            ));
        }
        (None, Some(_)) => {
            return Err(FieldError::new(
                "clientCertFile",
                "missing, while clientKeyFile is set: mutual TLS needs the certificate and its key",
            ));
        }
    };
    let tls13_only = match decl.str_field("tlsMinVersion")? {
        None | Some("1.2") => false,
        Some("1.3") => true,
        Some(other) => {
            return Err(FieldError::new(
                "tlsMinVersion",
                format!("expected \"1.2\" or \"1.3\", got {other:?}"),
            ));
        }
    };
    Ok(TlsOptions {
        ca_file,
        server_name,
        skip_verify,
        min_validity_days,
        client_auth,
        tls13_only,
    })
}

/// A path field; an empty one is an error.
fn path_field(decl: &Declaration, field: &str) -> Result<Option<PathBuf>, FieldError> {
    match decl.str_field(field)? {
        Some("") => Err(FieldError::new(field, "an empty path")),
        other => Ok(other.map(PathBuf::from)),
    }
}

/// Finds the trust store and the client configuration (shared with every
/// probe that trusts the same file), once per reset. `Err`: the
/// declaration is invalid (a `caFile` that cannot be used); `Ok(Err)`: it
/// is valid, but every run fails with the error (no system trust store).
#[cfg(feature = "tls")]
pub(crate) fn tls_setup(options: &TlsOptions) -> Result<Result<TlsSetup, SetupError>, FieldError> {
    match TlsSetup::new(options) {
        Err(SetupError::CaFile { path, why }) => Err(FieldError::new(
            "caFile",
            format!("{}: {why}", path.display()),
        )),
        Err(SetupError::ClientAuth { field, path, why }) => {
            Err(FieldError::new(field, format!("{}: {why}", path.display())))
        }
        setup => Ok(setup),
    }
}

/// The reference of the TLS fields, shared by `tcp` and `http`.
#[rustfmt::skip]
pub(crate) const TLS_FIELDS: &[Field] = &[
    Field::new("caFile", "string: path of a PEM bundle, not empty", "the system trust store", "The certificates trusted instead of the system store"),
    Field::new("tlsServerName", "string: a DNS name or an IP address, not empty", "the URL's host, or `host`", "The name sent as SNI and verified against the certificate."),
    Field::new("tlsSkipVerify", "boolean", "false", "Complete the handshake without checking the chain, the name or the dates"),
    Field::new("minCertValidityDays", "integer, 0 to 3650", "none", "Fail when a certificate of the chain the client verified expires in fewer days:"),
    Field::new("clientCertFile", "string: path of a PEM certificate (chain), not empty", "none", "The certificate offered to a server that asks for one (mutual TLS); needs `clientKeyFile`."),
    Field::new("clientKeyFile", "string: path of a PEM private key, not empty", "none", "The private key of `clientCertFile`; needs `clientCertFile`."),
    Field::new("tlsMinVersion", "string: `\"1.2\"` or `\"1.3\"`", "`\"1.2\"`", "The oldest TLS version offered"),
];

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn options(fields: Value) -> Result<TlsOptions, String> {
        tls_options(&Declaration::from_value("t", fields)).map_err(|e| e.to_string())
    }

    #[test]
    fn client_files_come_both_or_neither() {
        let both = options(json!({"clientCertFile": "/c.pem", "clientKeyFile": "/k.pem"}));
        assert_eq!(
            both.unwrap().client_auth,
            Some(ClientAuthFiles {
                cert: PathBuf::from("/c.pem"),
                key: PathBuf::from("/k.pem"),
            })
        );
        assert_eq!(options(json!({})).unwrap().client_auth, None);
        assert_eq!(
            options(json!({"clientCertFile": "/c.pem"})).unwrap_err(),
            "invalid declaration: field `clientKeyFile`: missing, while clientCertFile is set: mutual TLS needs the \
             certificate and its key"
        );
        assert_eq!(
            options(json!({"clientKeyFile": "/k.pem", "clientCertFile": null})).unwrap_err(),
            "invalid declaration: field `clientCertFile`: missing, while clientKeyFile is set: mutual TLS needs the \
             certificate and its key"
        );
        assert_eq!(
            options(json!({"clientCertFile": "", "clientKeyFile": "/k.pem"})).unwrap_err(),
            "invalid declaration: field `clientCertFile`: an empty path"
        );
    }

    #[test]
    fn tls_min_version_is_1_2_or_1_3() {
        assert!(!options(json!({})).unwrap().tls13_only);
        assert!(!options(json!({"tlsMinVersion": "1.2"})).unwrap().tls13_only);
        assert!(options(json!({"tlsMinVersion": "1.3"})).unwrap().tls13_only);
        for bad in [json!("1.1"), json!("TLSv1.3"), json!("")] {
            assert_eq!(
                options(json!({"tlsMinVersion": bad})).unwrap_err(),
                format!(
                    "invalid declaration: field `tlsMinVersion`: expected \"1.2\" or \"1.3\", got {bad}"
                )
            );
        }
        assert!(options(json!({"tlsMinVersion": 1.3})).is_err());
    }
}

//! `method`, `body` and `bodyFile`: what a request asks and what it sends.

use std::path::Path;
use std::sync::Arc;

use crate::decl::{Declaration, FieldError};
use crate::file::RegularFile;

use super::headers::is_tchar;

/// The largest request body, inline or from `bodyFile`.
pub(crate) const MAX_BODY: usize = 64 * 1024;
/// Longest `method` accepted.
const MAX_METHOD: usize = 32;

/// A request's method and body, shared by the hops that keep them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) method: Arc<str>,
    /// Sent with `Content-Length`; `None` sends no body.
    pub(crate) body: Option<Arc<[u8]>>,
}

impl Request {
    pub(crate) fn from_decl(decl: &Declaration) -> Result<Request, FieldError> {
        let method = match decl.str_field("method")? {
            None => "GET",
            Some(m) if m.is_empty() || m.len() > MAX_METHOD || !m.chars().all(is_tchar) => {
                return Err(FieldError::new(
                    "method",
                    format!(
                        "expected an HTTP method (a token of at most {MAX_METHOD} characters such as GET, HEAD or POST), got {}",
                        crate::text::quoted(crate::text::head(m, 40))
                    ),
                ));
            }
            Some(m) => m,
        };
        let body = match (decl.str_field("body")?, decl.str_field("bodyFile")?) {
            (Some(_), Some(_)) => {
                return Err(FieldError::new(
                    "bodyFile",
                    "`body` and `bodyFile` exclude each other",
                ));
            }
            (Some(b), None) if b.len() > MAX_BODY => {
                return Err(FieldError::new(
                    "body",
                    format!("{} bytes is longer than 64 KiB", b.len()),
                ));
            }
            (Some(b), None) => Some(b.as_bytes().into()),
            (None, Some(path)) => Some(read_body(path)?.into()),
            (None, None) => None,
        };
        Ok(Request {
            method: method.into(),
            body,
        })
    }

    pub(crate) fn is_head(&self) -> bool {
        &*self.method == "HEAD"
    }

    /// The request a redirect with `status` makes: 301, 302 and 303 turn
    /// it into a `GET` without a body (HEAD stays HEAD), as browsers and
    /// Go's net/http do; 307 and 308 repeat it.
    pub(crate) fn after_redirect(&self, status: u16) -> Request {
        match status {
            301..=303 if !self.is_head() => Request {
                method: "GET".into(),
                body: None,
            },
            _ => self.clone(),
        }
    }
}

/// The content of `bodyFile`, read at prepare.
fn read_body(path: &str) -> Result<Vec<u8>, FieldError> {
    if path.is_empty() {
        return Err(FieldError::new("bodyFile", "the path is empty"));
    }
    RegularFile::read_all(Path::new(path), MAX_BODY as u64)
        .map_err(|e| FieldError::new("bodyFile", format!("cannot read {path:?}: {e}")))
}

//! What the two benches share.

use std::fmt::Write as _;

/// A declarations file of `n` probes of the benches' no-op kind, named
/// `p000000`, `p000001`, ..., all enforce at `interval_secs` (about 63
/// bytes a probe).
pub fn noop_declarations(n: usize, interval_secs: u64) -> String {
    let mut json = String::with_capacity(n * 64 + 2);
    json.push('{');
    for i in 0..n {
        if i > 0 {
            json.push(',');
        }
        let _ = write!(
            json,
            "\"p{i:06}\":{{\"kind\":\"noop\",\"mode\":\"enforce\",\"intervalSeconds\":{interval_secs}}}"
        );
    }
    json.push('}');
    json
}

//! `icmp` probes: `packets` echo requests to `host`, 100 ms apart, over an
//! unprivileged ICMP datagram socket (the kernel sets the identifier and
//! hands the socket only its own replies); fail when more than
//! `maxLossPercent` of them got no reply by the end of the run, or when the
//! replies' average round trip is longer than `maxRttMs`. The fields are in
//! `docs/declarations.md`. A run is a state machine over that socket,
//! bounded by `timeoutSecs`: it costs a socket and a timer entry, not a
//! worker.
//!
//! Reasons: `icmp probe: 127.0.0.1: 3 of 3 packets lost (100%, more than
//! maxLossPercent 0) within 10 s`, `icmp probe: ::1: average rtt 12.300
//! ms, more than maxRttMs 10 (min/avg/max 1.100/12.300/20.000 ms of 3
//! replies)`,
//! `icmp probe: resolve <host>: <error>`, and when the kernel refuses the
//! socket, `icmp probe: this process (gid 0) may not open ICMP datagram
//! sockets: net.ipv4.ping_group_range is "1 0"; ...`.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::AtomicU16;
use std::time::Duration;

use crate::decl::{Declaration, Field, FieldError};
use crate::runner::{HostFacts, Kind, Prepared, timeout_secs};

mod run;
#[cfg(test)]
mod tests;

/// `packets` when absent.
const DEFAULT_PACKETS: u64 = 3;
/// The most echo requests of one run.
const MAX_PACKETS: u64 = 20;
/// Between two echo requests of a run (ping's is 1 s; check_icmp's 80 ms).
pub(crate) const SPACING: Duration = Duration::from_millis(100);
/// The largest `maxLossPercent`: a run passes only with some reply.
const MAX_LOSS_PERCENT: u64 = 99;
/// The largest `maxRttMs` (a day, as `timeoutSecs`).
const MAX_RTT_MS: u64 = 86_400_000;

/// The `icmp` kind.
pub(crate) struct IcmpKind;

impl Kind for IcmpKind {
    fn fields(&self) -> &'static [&'static [Field]] {
        &[FIELDS]
    }

    fn lint(&self, decl: &Declaration, warn: &mut dyn FnMut(&'static str, String)) {
        let Ok(check) = IcmpCheck::from_decl(decl) else {
            return;
        };
        let p = &check.probe;
        if let Some(max) = p.max_rtt
            && max >= Duration::from_secs(p.timeout_secs)
        {
            warn(
                "maxRttMs",
                format!(
                    "{} is not shorter than timeoutSecs ({} s): a reply that late counts \
                     as lost, so this limit never fails a run",
                    max.as_millis(),
                    p.timeout_secs
                ),
            );
        }
    }

    fn prepare(&self, decl: &Declaration, _host: &HostFacts) -> Result<Prepared, FieldError> {
        Ok(Prepared::Machine(Arc::new(IcmpCheck::from_decl(decl)?)))
    }
}

/// Its own fields, as `docs/declarations.md` lists them.
#[rustfmt::skip]
const FIELDS: &[Field] = &[
    Field::new("host", "string: a host name, an IPv4 or an IPv6 literal (with or without brackets)", "required", "The host to ping."),
    Field::new("packets", "integer, 1 to 20", "3", "Echo requests sent per run, 100 ms apart, the first at the start of the run."),
    Field::new("maxLossPercent", "integer, 0 to 99", "0", "Fail when more than this percentage of the requests got no reply by the end of the run"),
    Field::new("maxRttMs", "integer, 1 to 86400000", "none", "Fail when the average round-trip time of the replies is longer than this many milliseconds"),
    Field::new("ipFamily", "string: `any`, `4` or `6`", "`any`", "Ping only an IPv4 (`4`) or only an IPv6 (`6`) address of `host`"),
];

/// A prepared `icmp` probe.
#[derive(Debug, Clone)]
pub(crate) struct IcmpCheck {
    probe: Arc<Probe>,
}

/// What every run of one probe shares.
#[derive(Debug)]
struct Probe {
    host: Host,
    /// `ipFamily`: only IPv4 (`Some(false)`) or only IPv6 (`Some(true)`).
    ipv6: Option<bool>,
    packets: u16,
    max_loss_percent: u8,
    max_rtt: Option<Duration>,
    timeout_secs: u64,
    /// The sequence number of the next run's first request: consecutive
    /// runs use different ones, so a late reply to an earlier run (whose
    /// identifier the kernel may hand out again) never counts.
    next_seq: AtomicU16,
}

/// `host`: an address, or a name looked up at every run.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Ip(IpAddr),
    Name(String),
}

impl IcmpCheck {
    pub(crate) fn from_decl(decl: &Declaration) -> Result<IcmpCheck, FieldError> {
        let host =
            parse_host(decl.required_str("host")?).map_err(|p| FieldError::new("host", p))?;
        let packets = decl
            .u64_in("packets", 1, MAX_PACKETS)?
            .unwrap_or(DEFAULT_PACKETS);
        let max_loss_percent = decl
            .u64_in("maxLossPercent", 0, MAX_LOSS_PERCENT)?
            .unwrap_or(0);
        let max_rtt = decl
            .u64_in("maxRttMs", 1, MAX_RTT_MS)?
            .map(Duration::from_millis);
        let ipv6 = match decl.str_field("ipFamily")? {
            None | Some("any") => None,
            Some("4") => Some(false),
            Some("6") => Some(true),
            Some(other) => {
                return Err(FieldError::new(
                    "ipFamily",
                    format!("expected \"any\", \"4\" or \"6\", got {other:?}"),
                ));
            }
        };
        let timeout_secs = timeout_secs(decl)?;
        // The last request must leave before the run's deadline.
        let sending = SPACING * (packets as u32 - 1);
        if sending >= Duration::from_secs(timeout_secs) {
            return Err(FieldError::new(
                "packets",
                format!(
                    "{packets} requests 100 ms apart take {} ms, not less than timeoutSecs ({timeout_secs} s)",
                    sending.as_millis()
                ),
            ));
        }
        Ok(IcmpCheck {
            probe: Arc::new(Probe {
                host,
                ipv6,
                packets: u16::try_from(packets).expect("at most MAX_PACKETS"),
                max_loss_percent: u8::try_from(max_loss_percent).expect("at most 99"),
                max_rtt,
                timeout_secs,
                next_seq: AtomicU16::new(0),
            }),
        })
    }
}

/// Accepts an IP literal (IPv6 with or without brackets) or a host name;
/// the error is the problem text of a `FieldError`.
fn parse_host(host: &str) -> Result<Host, String> {
    let bad = || format!("expected a host name or an IP address, got {host:?}");
    if let Some(inner) = host.strip_prefix('[') {
        return inner
            .strip_suffix(']')
            .and_then(|s| s.parse::<Ipv6Addr>().ok())
            .map(|v6| Host::Ip(IpAddr::V6(v6)))
            .ok_or_else(bad);
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Host::Ip(ip));
    }
    let name_like = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    if host.is_empty() || host.len() > 253 || !host.chars().all(name_like) {
        return Err(bad());
    }
    Ok(Host::Name(host.to_owned()))
}

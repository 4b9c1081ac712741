//! One registry of probe kinds for the engine and `check`: built-in
//! [`Kind`]s and the [`Runner`]s an embedding program registers.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::machine::Machine;
use super::{
    Check, Placement, Runner, dns, evidence, exec, file, http, icmp, systemd, tcp, timeout_secs,
};
use crate::decl::{self, Declaration, Field, FieldError};

/// A built-in kind: everything about it is in its own module.
pub(crate) trait Kind: Send + Sync + 'static {
    /// Its own fields (beyond [`decl::SHARED_FIELDS`]), table by table.
    fn fields(&self) -> &'static [&'static [Field]];

    /// Warns, through `warn(field, problem)`, of what the engine will read
    /// differently from what is written.
    fn lint(&self, _decl: &Declaration, _warn: &mut dyn FnMut(&'static str, String)) {}

    /// Reads its fields once per reset: a state machine for the workers,
    /// or a check that never waits.
    fn prepare(&self, decl: &Declaration, host: &HostFacts) -> Result<Prepared, FieldError>;
}

/// How a probe runs on the engine's workers.
#[derive(Clone)]
pub(crate) enum Prepared {
    /// A built-in run: a state machine on a worker's poll loop.
    Machine(Arc<dyn Machine>),
    /// A check that never waits: run right on a worker.
    Inline(Arc<dyn Check>),
    /// A custom check that may block: run on a thread of its own.
    Blocking(Arc<dyn Check>),
}

/// What the built-in kinds know of the host they run on (the `evidence`
/// and `systemd` kinds read it).
#[derive(Debug, Clone, Default)]
#[cfg_attr(not(feature = "evidence"), allow(dead_code))]
pub(crate) struct HostFacts {
    host_key: Option<PathBuf>,
    hostname: Option<String>,
    os_hostname: Arc<OnceLock<String>>,
    systemctl: Option<PathBuf>,
}

impl HostFacts {
    /// The key evidence signatures are checked against.
    #[cfg(feature = "evidence")]
    pub(crate) fn host_key(&self) -> PathBuf {
        self.host_key
            .clone()
            .unwrap_or_else(|| evidence::DEFAULT_HOST_KEY.into())
    }

    /// The host name evidence must carry: the one set, or the OS's.
    #[cfg(feature = "evidence")]
    pub(crate) fn hostname(&self) -> &str {
        self.hostname
            .as_deref()
            .unwrap_or_else(|| self.os_hostname.get_or_init(crate::sys::host::hostname))
    }

    /// The `systemctl` the `systemd` kind runs: the one set, else the name,
    /// looked up on `PATH` at each run.
    pub(crate) fn systemctl(&self) -> &std::ffi::OsStr {
        self.systemctl
            .as_deref()
            .map_or("systemctl".as_ref(), |p| p.as_os_str())
    }
}

/// A registered kind.
#[derive(Clone)]
enum Entry {
    BuiltIn(&'static dyn Kind),
    Custom(Arc<dyn Runner>),
}

/// The built-in kinds by name.
const BUILT_IN: [(&str, &dyn Kind); 8] = [
    ("tcp", &tcp::TcpKind),
    ("exec", &exec::ExecKind),
    ("http", &http::HttpKind),
    ("evidence", &evidence::EvidenceKind),
    ("file", &file::FileKind),
    ("systemd", &systemd::SystemdKind),
    ("icmp", &icmp::IcmpKind),
    ("dns", &dns::DnsKind),
];

/// Kind name -> kind.
#[derive(Clone)]
pub struct Registry {
    kinds: BTreeMap<String, Entry>,
    host: HostFacts,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.kinds.keys()).finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::builtin()
    }
}

impl Registry {
    /// No kinds at all.
    pub fn empty() -> Self {
        Registry {
            kinds: BTreeMap::new(),
            host: HostFacts::default(),
        }
    }

    /// The built-in kinds: `tcp`, `exec`, `http`, `evidence`, `file`,
    /// `systemd`, `icmp`, `dns`.
    pub fn builtin() -> Self {
        let mut r = Registry::empty();
        for (name, kind) in BUILT_IN {
            r.kinds.insert(name.to_owned(), Entry::BuiltIn(kind));
        }
        r
    }

    /// Registers (or replaces) a kind.
    pub fn insert(&mut self, kind: impl Into<String>, runner: impl Runner) {
        self.kinds
            .insert(kind.into(), Entry::Custom(Arc::new(runner)));
    }

    /// Whether `kind` is registered.
    pub fn contains(&self, kind: &str) -> bool {
        self.kinds.contains_key(kind)
    }

    /// The names of the registered kinds, in byte order.
    ///
    /// # Examples
    ///
    /// ```
    /// use probewheel::runner::Registry;
    ///
    /// let registry = Registry::builtin();
    /// assert!(registry.kinds().any(|k| k == "tcp"));
    /// ```
    pub fn kinds(&self) -> impl Iterator<Item = &str> + '_ {
        self.kinds.keys().map(String::as_str)
    }

    /// The key evidence signatures are checked against.
    pub(crate) fn set_host_key(&mut self, path: PathBuf) {
        self.host.host_key = Some(path);
    }

    /// The host name evidence must carry.
    pub(crate) fn set_hostname(&mut self, name: String) {
        self.host.hostname = Some(name);
    }

    /// The `systemctl` program the `systemd` kind runs.
    pub(crate) fn set_systemctl(&mut self, path: PathBuf) {
        self.host.systemctl = Some(path);
    }

    /// The reference of a built-in kind's own fields (the shared ones are
    /// [`decl::SHARED_FIELDS`]); nothing for any other kind.
    ///
    /// # Examples
    ///
    /// ```
    /// use probewheel::runner::Registry;
    ///
    /// let registry = Registry::builtin();
    /// assert!(registry.fields("tcp").any(|f| f.name == "port"));
    /// assert_eq!(registry.fields("ftp").count(), 0);
    /// ```
    pub fn fields(&self, kind: &str) -> impl Iterator<Item = &'static Field> + '_ {
        let tables = match self.kinds.get(kind) {
            Some(Entry::BuiltIn(kind)) => kind.fields(),
            _ => &[],
        };
        tables.iter().flat_map(|t| t.iter())
    }

    /// Whether a declaration of `kind` reads `field`: a shared field, a
    /// built-in kind's own, or one a custom kind names in
    /// [`Runner::extra_fields`].
    fn reads(entry: &Entry, field: &str) -> bool {
        decl::is_shared(field)
            || match entry {
                Entry::BuiltIn(kind) => kind
                    .fields()
                    .iter()
                    .flat_map(|t| *t)
                    .any(|f| f.name == field),
                Entry::Custom(runner) => runner.extra_fields().contains(&field),
            }
    }

    /// The fields of `decl` its kind does not read (none for a kind that is
    /// not registered: that is the error).
    pub(crate) fn unknown_fields<'d>(&self, decl: &'d Declaration) -> Vec<&'d str> {
        match self.kinds.get(decl.kind()) {
            Some(entry) => decl
                .field_names()
                .filter(|f| !Registry::reads(entry, f))
                .collect(),
            None => Vec::new(),
        }
    }

    /// The kind's own warnings about a declaration (see [`Kind::lint`]).
    pub(crate) fn lint(&self, decl: &Declaration, warn: &mut dyn FnMut(&'static str, String)) {
        if let Some(Entry::BuiltIn(kind)) = self.kinds.get(decl.kind()) {
            kind.lint(decl, warn);
        }
    }

    /// Prepares a declaration as the engine would (`timeoutSecs` included
    /// for a kind the engine bounds), or says why every tick fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use probewheel::Declaration;
    /// use probewheel::runner::{PrepareError, Registry};
    ///
    /// let registry = Registry::builtin();
    /// let typo = Declaration::from_value(
    ///     "db",
    ///     serde_json::json!({"kind": "tcp", "mode": "enforce", "port": 70000}),
    /// );
    /// match registry.prepare(&typo) {
    ///     Err(PrepareError::Invalid(e)) => assert_eq!(e.field(), "port"),
    ///     other => panic!("{other:?}"),
    /// }
    /// let odd = Declaration::from_value("x", serde_json::json!({"kind": "ftp", "mode": "observe"}));
    /// let err = registry.prepare(&odd).err().unwrap();
    /// assert_eq!(err.to_string(), "unknown probe kind 'ftp'");
    /// ```
    pub fn prepare(&self, decl: &Declaration) -> Result<PreparedProbe, PrepareError> {
        self.prepare_bounded(decl).map(|_| PreparedProbe(()))
    }

    /// Prepares a declaration for the engine, with the bound of each run
    /// (`None` for a state machine, which bounds its own).
    pub(crate) fn prepare_task(
        &self,
        decl: &Declaration,
    ) -> Result<(Prepared, Option<Duration>), String> {
        self.prepare_bounded(decl).map_err(|e| e.to_string())
    }

    fn prepare_bounded(
        &self,
        decl: &Declaration,
    ) -> Result<(Prepared, Option<Duration>), PrepareError> {
        if let Some(e) = decl.invalid() {
            return Err(PrepareError::Invalid(e.clone()));
        }
        let Some(entry) = self.kinds.get(decl.kind()) else {
            return Err(PrepareError::UnknownKind(decl.kind().to_owned()));
        };
        if let Some(field) = decl.too_deep().find(|f| Registry::reads(entry, f)) {
            return Err(PrepareError::Invalid(decl::too_deep_to_read(field)));
        }
        let prepared = match entry {
            Entry::BuiltIn(kind) => kind.prepare(decl, &self.host),
            Entry::Custom(runner) => runner.prepare(decl).map(|check| match check.placement() {
                Placement::Inline => Prepared::Inline(check),
                Placement::Blocking => Prepared::Blocking(check),
            }),
        }
        .map_err(PrepareError::Invalid)?;
        let bound = match prepared {
            Prepared::Machine(_) => None,
            _ => Some(Duration::from_secs(
                timeout_secs(decl).map_err(PrepareError::Invalid)?,
            )),
        };
        Ok((prepared, bound))
    }
}

/// A declaration [`Registry::prepare`] found runnable. Only the engine
/// runs probes.
#[derive(Debug)]
pub struct PreparedProbe(());

/// Why [`Registry::prepare`] gives no check; every tick of the probe fails
/// with this error's `Display` as its `failureReason`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PrepareError {
    /// A shared or kind-specific field is invalid; shown as the
    /// [`FieldError`] shows itself (`invalid declaration: ...`).
    Invalid(FieldError),
    /// No runner is registered for this kind: `unknown probe kind '<kind>'`.
    UnknownKind(String),
}

impl fmt::Display for PrepareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrepareError::Invalid(e) => e.fmt(f),
            PrepareError::UnknownKind(kind) => write!(f, "unknown probe kind '{kind}'"),
        }
    }
}

// No `source`: `Display` is the whole reason; a source would print it twice.
impl std::error::Error for PrepareError {}

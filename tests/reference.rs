//! The declarations reference (`docs/declarations.md`) against the code,
//! so that neither can drift from the other:
//! - its tables are the ones the code declares (`decl::SHARED_FIELDS` and
//!   each built-in kind's `Registry::fields`): the same rows, types and
//!   defaults, each meaning starting with the code's;
//! - each built-in kind reads exactly the fields listed for it (the shared
//!   ones and its own section): a field it reads refuses a value of the
//!   wrong shape, naming the field, and a field it does not read ignores it;
//! - every integer range in the tables is the one the code enforces, and
//!   the shared fields' defaults are the ones a declaration gets.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use std::time::Duration;

use probewheel::Declaration;
use probewheel::check::{Severity, check};
use probewheel::decl::{self, Field, SHARED_FIELDS};
use probewheel::runner::{PrepareError, Registry};
use serde_json::{Value, json};

const REFERENCE: &str = include_str!("../docs/declarations.md");

/// Every built-in kind.
fn all_kinds() -> Vec<&'static str> {
    static KINDS: OnceLock<Vec<String>> = OnceLock::new();
    let kinds = KINDS.get_or_init(|| Registry::builtin().kinds().map(str::to_owned).collect());
    kinds.iter().map(String::as_str).collect()
}

/// The built-in kinds this build runs. Without the `evidence` feature its
/// kind accepts any declaration and fails every run, so it reads nothing.
fn kinds() -> Vec<&'static str> {
    let mut kinds = all_kinds();
    if !cfg!(feature = "evidence") {
        kinds.retain(|k| *k != "evidence");
    }
    kinds
}

/// The kinds a section of the reference is about; every section with a
/// field table must be here.
fn section_kinds(heading: &str) -> Vec<&'static str> {
    match heading {
        "Shared fields" => all_kinds(),
        "http" => vec!["http"],
        "tcp" => vec!["tcp"],
        "TLS fields of http and tcp" => vec!["http", "tcp"],
        "exec" => vec!["exec"],
        "evidence" => vec!["evidence"],
        "file" => vec!["file"],
        "systemd" => vec!["systemd"],
        "icmp" => vec!["icmp"],
        "dns" => vec!["dns"],
        other => panic!("a field table under an unexpected heading {other:?}"),
    }
}

/// One row of a field table.
#[derive(Debug)]
struct Row {
    field: String,
    range: String,
    default: String,
    meaning: String,
}

/// Every field table (first column `field`), by the `## ` heading above it.
fn tables() -> BTreeMap<String, Vec<Row>> {
    let mut tables: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    let mut heading = String::new();
    let mut lines = REFERENCE.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(h) = line.strip_prefix("## ") {
            heading = h.trim().to_owned();
            continue;
        }
        let header = cells(line);
        if header.first().map(String::as_str) != Some("field") {
            continue;
        }
        assert_eq!(
            header,
            ["field", "type and range", "default", "meaning"],
            "columns of the table under {heading:?}"
        );
        let separator = lines.next().unwrap_or_default();
        assert!(separator.starts_with("|---"), "{separator:?}");
        let rows = tables.entry(heading.clone()).or_default();
        assert!(rows.is_empty(), "two field tables under {heading:?}");
        while let Some(line) = lines.next_if(|l| l.starts_with('|')) {
            let row = cells(line);
            assert_eq!(row.len(), 4, "a row of 4 cells under {heading:?}: {line}");
            let field = row[0]
                .strip_prefix('`')
                .and_then(|f| f.strip_suffix('`'))
                .filter(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_alphanumeric()))
                .unwrap_or_else(|| panic!("the field cell is one `name`: {:?}", row[0]));
            rows.push(Row {
                field: field.to_owned(),
                range: row[1].clone(),
                default: row[2].clone(),
                meaning: row[3].clone(),
            });
        }
        assert!(!rows.is_empty(), "an empty table under {heading:?}");
    }
    tables
}

fn cells(line: &str) -> Vec<String> {
    let Some(inner) = line
        .trim()
        .strip_prefix('|')
        .and_then(|l| l.strip_suffix('|'))
    else {
        return Vec::new();
    };
    inner.split('|').map(|c| c.trim().to_owned()).collect()
}

/// kind -> the fields the reference lists for it (shared ones included).
fn documented() -> BTreeMap<&'static str, BTreeSet<String>> {
    let mut out: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (heading, rows) in tables() {
        for kind in section_kinds(&heading) {
            for row in &rows {
                out.entry(kind).or_default().insert(row.field.clone());
            }
        }
    }
    out
}

/// A valid declaration of `kind` with `extra` fields set on top.
fn declaration(kind: &str, extra: &[(&str, Value)]) -> Declaration {
    let mut v = match kind {
        "http" => json!({"kind": "http", "mode": "enforce", "url": "http://127.0.0.1:9/"}),
        "tcp" => json!({"kind": "tcp", "mode": "enforce", "port": 9}),
        "exec" => json!({"kind": "exec", "mode": "enforce", "command": ["/bin/true"]}),
        "evidence" => json!({"kind": "evidence", "mode": "enforce", "framework": "nis2"}),
        "file" => json!({"kind": "file", "mode": "enforce", "path": "/run/heartbeat"}),
        "systemd" => json!({"kind": "systemd", "mode": "enforce", "unit": "nginx"}),
        "icmp" => json!({"kind": "icmp", "mode": "enforce", "host": "127.0.0.1"}),
        "dns" => {
            json!({"kind": "dns", "mode": "enforce", "name": "example.com", "server": "127.0.0.1"})
        }
        other => panic!("no base declaration for {other}"),
    };
    for (field, value) in extra {
        v[*field] = value.clone();
    }
    Declaration::from_value("probe", v)
}

/// The field a prepared declaration is invalid by, if any.
fn invalid_field(decl: &Declaration) -> Option<String> {
    match Registry::builtin().prepare(decl) {
        Ok(_) => None,
        Err(PrepareError::Invalid(e)) => Some(e.field().to_owned()),
        Err(e) => panic!("{e}"),
    }
}

/// A value no field of any kind accepts: an array of arrays.
fn wrong_shape() -> Value {
    json!([[[]]])
}

/// Fields a kind may read leniently although the reference lists them for
/// every kind: the engine reads `timeoutSecs` of every probe, and an
/// invalid value counts as the default of 10 s for the kinds that do not
/// check it themselves.
const LENIENT: &[(&str, &str)] = &[("tcp", "timeoutSecs"), ("evidence", "timeoutSecs")];

/// Every field the code declares: the shared ones, then each built-in
/// kind's, each name once.
fn known_fields() -> Vec<&'static str> {
    let registry = Registry::builtin();
    let mut names: Vec<&'static str> = SHARED_FIELDS.iter().map(|f| f.name).collect();
    for kind in registry.kinds() {
        names.extend(registry.fields(kind).map(|f| f.name));
    }
    let mut seen = BTreeSet::new();
    names.retain(|f| seen.insert(*f));
    names
}

/// The table the code declares for a section: the shared fields, or the
/// fields that exactly the section's kinds declare (a field declared
/// alike by several kinds, as the TLS fields are, is in their common
/// section), in the order of the first kind's.
fn generated(heading: &str) -> Vec<&'static Field> {
    if heading == "Shared fields" {
        return SHARED_FIELDS.iter().collect();
    }
    let registry = Registry::builtin();
    let all = all_kinds();
    let kinds = section_kinds(heading);
    registry
        .fields(kinds[0])
        .filter(|f| {
            all.iter()
                .all(|k| registry.fields(k).any(|g| g == *f) == kinds.contains(k))
        })
        .collect()
}

#[test]
fn the_reference_tables_are_the_ones_the_code_declares() {
    let tables = tables();
    let mut documented = 0;
    for (heading, rows) in &tables {
        let generated = generated(heading);
        let names = |v: Vec<&str>| v.join(", ");
        assert_eq!(
            names(rows.iter().map(|r| r.field.as_str()).collect()),
            names(generated.iter().map(|f| f.name).collect()),
            "the fields under {heading:?}"
        );
        for (row, field) in rows.iter().zip(generated) {
            assert_eq!(row.range, field.ty, "type and range of {}", field.name);
            assert_eq!(row.default, field.default, "default of {}", field.name);
            assert!(
                row.meaning.starts_with(field.meaning),
                "the meaning of {} starts with the code's {:?}: {:?}",
                field.name,
                field.meaning,
                row.meaning
            );
            documented += 1;
        }
    }
    let declared = SHARED_FIELDS.len()
        + all_kinds()
            .iter()
            .flat_map(|k| Registry::builtin().fields(k).collect::<Vec<_>>())
            .map(|f| (f.name, f.meaning))
            .collect::<BTreeSet<_>>()
            .len();
    assert_eq!(documented, declared, "a declared field in no table");
}

#[test]
fn each_kind_reads_exactly_the_fields_listed_for_it() {
    let documented = documented();
    let mut wrong = Vec::new();
    for kind in kinds() {
        for field in known_fields() {
            let listed = documented[kind].contains(field);
            let decl = declaration(kind, &[(field, wrong_shape())]);
            let reads = invalid_field(&decl).as_deref() == Some(field);
            let lenient = LENIENT.contains(&(kind, field));
            if listed != reads && !(listed && lenient) {
                wrong.push(format!(
                    "{kind}.{field}: listed {listed}, read by the code {reads}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn check_reports_exactly_the_fields_a_kind_does_not_read_as_unknown() {
    let documented = documented();
    for kind in kinds() {
        let mut fields: Vec<(&str, Value)> = documented[kind]
            .iter()
            .filter(|f| !matches!(f.as_str(), "kind" | "mode"))
            .map(|f| (f.as_str(), Value::Null))
            .collect();
        // A field of another kind, and one of none.
        let foreign = known_fields()
            .into_iter()
            .find(|f| !documented[kind].contains(*f))
            .unwrap();
        fields.push((foreign, Value::Null));
        fields.push(("notAField", Value::Null));
        let decls = decl::Declarations::from_declarations([declaration(kind, &fields)]).unwrap();
        let unknown: BTreeSet<String> = check(&decls, &Registry::builtin(), Duration::from_secs(5))
            .into_iter()
            .filter(|f| f.severity == Severity::Warning && f.problem.contains("unknown field"))
            .map(|f| f.field)
            .collect();
        let want: BTreeSet<String> = [foreign, "notAField"].map(str::to_owned).into();
        assert_eq!(unknown, want, "{kind}");
    }
}

/// `integer, A to B ...` in the type column.
fn integer_range(range: &str) -> Option<(u64, u64)> {
    let rest = range.strip_prefix("integer, ")?;
    let mut words = rest.split_whitespace();
    let min = words.next()?.parse().ok()?;
    (words.next()? == "to").then_some(())?;
    let max = words.next()?.trim_end_matches(',').parse().ok()?;
    Some((min, max))
}

#[test]
fn every_integer_range_is_the_one_the_code_enforces() {
    let mut checked = 0;
    for (heading, rows) in tables() {
        for row in rows {
            let kinds: Vec<&str> = section_kinds(&heading)
                .into_iter()
                .filter(|k| kinds().contains(k))
                .filter(|k| !LENIENT.contains(&(*k, row.field.as_str())))
                .collect();
            if row.range.starts_with("integer") {
                assert!(
                    integer_range(&row.range).is_some(),
                    "{}: write the range as `integer, A to B`: {:?}",
                    row.field,
                    row.range
                );
            }
            let Some((min, max)) = integer_range(&row.range) else {
                continue;
            };
            for kind in kinds {
                let invalid = |n: u64| {
                    let decl = declaration(kind, &[(row.field.as_str(), json!(n))]);
                    invalid_field(&decl).as_deref() == Some(row.field.as_str())
                };
                assert!(
                    !invalid(min),
                    "{kind}.{}: {min} should be accepted",
                    row.field
                );
                assert!(
                    !invalid(max),
                    "{kind}.{}: {max} should be accepted",
                    row.field
                );
                assert!(
                    invalid(max + 1),
                    "{kind}.{}: {} should be refused",
                    row.field,
                    max + 1
                );
                if min > 0 {
                    assert!(
                        invalid(min - 1),
                        "{kind}.{}: {} should be refused",
                        row.field,
                        min - 1
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 15, "only {checked} ranges checked");
}

#[test]
fn the_shared_defaults_are_the_ones_a_declaration_gets() {
    let d = declaration("tcp", &[]);
    let actual: BTreeMap<&str, String> = [
        ("intervalSeconds", d.interval_secs().to_string()),
        ("runOnce", d.run_once().to_string()),
        ("timeoutSecs", d.timeout_secs().to_string()),
        ("failureThreshold", d.failure_threshold().to_string()),
        ("successThreshold", d.success_threshold().to_string()),
        ("startupGraceSeconds", d.startup_grace_secs().to_string()),
        ("initialDelaySeconds", d.initial_delay_secs().to_string()),
    ]
    .into_iter()
    .collect();
    for row in &tables()["Shared fields"] {
        match actual.get(row.field.as_str()) {
            Some(value) => assert_eq!(&row.default, value, "default of {}", row.field),
            None => assert_eq!(row.default, "required", "{}", row.field),
        }
    }
}

//! The Prometheus text reader in `tests/common` that `tests/service.rs`
//! checks `--metrics-file` with: it takes well-formed exposition text and
//! refuses each kind of malformed text, naming the rule that was broken.
//! A check that cannot fail would prove nothing about the metrics file.

mod common;

use common::prometheus::{MetricType, parse};

/// Well-formed text using most of the format: HELP escapes, a comment,
/// blank lines, labels with every escape and a trailing comma, special
/// values, timestamps, a histogram and a summary.
const GOOD: &str = r#"# HELP http_requests_total Requests served; a \\ and a\nnew line.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400",} 3 1395066363000

# A plain comment.
msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9
metric_without_timestamp_and_labels 12.47
something_weird{problem="division by zero"} +Inf -3982045
nothing_measured NaN
cold -Inf
	indented  7
# HELP rpc_duration_seconds A histogram of RPC durations.
# TYPE rpc_duration_seconds histogram
rpc_duration_seconds_bucket{le="0.05"} 24054
rpc_duration_seconds_bucket{le="+Inf"} 144320
rpc_duration_seconds_sum 53423
rpc_duration_seconds_count 144320
# TYPE rpc_quantiles summary
rpc_quantiles{quantile="0.5"} 4773
rpc_quantiles{quantile="0.99"} 76656
rpc_quantiles_sum 1.7560473e+07
rpc_quantiles_count 2693
"#;

#[test]
fn reads_well_formed_text_with_its_values_unescaped() {
    let m = parse(GOOD).unwrap();
    let names: Vec<&str> = m.families.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "http_requests_total",
            "msdos_file_access_time_seconds",
            "metric_without_timestamp_and_labels",
            "something_weird",
            "nothing_measured",
            "cold",
            "indented",
            "rpc_duration_seconds",
            "rpc_quantiles",
        ]
    );
    let requests = m.family("http_requests_total").unwrap();
    assert_eq!(requests.kind(), MetricType::Counter);
    assert_eq!(
        requests.help.as_deref(),
        Some("Requests served; a \\ and a\nnew line.")
    );
    assert_eq!(m.one("http_requests_total", &[("code", "400")]), Ok(3.0));
    assert_eq!(requests.samples[0].timestamp_ms, Some(1_395_066_363_000));
    let path = r"C:\DIR\FILE.TXT";
    assert_eq!(
        m.one("msdos_file_access_time_seconds", &[("path", path)]),
        Ok(1.458255915e9)
    );
    let msdos = &m.family("msdos_file_access_time_seconds").unwrap().samples[0];
    assert_eq!(msdos.labels[1].1, "Cannot find file:\n\"FILE.TXT\"");
    assert_eq!(msdos.timestamp_ms, None);
    assert_eq!(m.one("something_weird", &[]), Ok(f64::INFINITY));
    let weird = &m.family("something_weird").unwrap().samples[0];
    assert_eq!(weird.timestamp_ms, Some(-3_982_045));
    assert!(m.one("nothing_measured", &[]).unwrap().is_nan());
    assert_eq!(m.one("cold", &[]), Ok(f64::NEG_INFINITY));
    assert_eq!(m.one("indented", &[]), Ok(7.0));
    assert_eq!(m.family("indented").unwrap().kind(), MetricType::Untyped);
    let histogram = m.family("rpc_duration_seconds").unwrap();
    assert_eq!(histogram.kind(), MetricType::Histogram);
    assert_eq!(histogram.samples.len(), 4);
    assert_eq!(
        m.one("rpc_duration_seconds_bucket", &[("le", "+Inf")]),
        Ok(144_320.0)
    );
    assert_eq!(m.family("rpc_quantiles").unwrap().samples.len(), 4);
    assert_eq!(m.one("rpc_quantiles_sum", &[]), Ok(1.7560473e7));
    assert!(parse("").unwrap().families.is_empty());
}

#[test]
fn one_finds_exactly_one_sample() {
    let m = parse(GOOD).unwrap();
    let two = m.one("http_requests_total", &[("method", "post")]);
    assert!(two.unwrap_err().starts_with("2 samples"));
    let none = m.one("http_requests_total", &[("code", "500")]);
    assert!(none.unwrap_err().starts_with("0 samples"));
    assert!(m.one("no_such_metric", &[]).is_err());
}

/// `text` is refused, and the reason holds `why`.
#[track_caller]
fn refused(text: &str, why: &str) {
    match parse(text) {
        Ok(m) => panic!("accepted {text:?} as {m:?}"),
        Err(e) => assert!(e.contains(why), "refused {text:?} for {e:?}, not {why:?}"),
    }
}

#[test]
fn refuses_bad_metric_and_label_names() {
    refused("1up 1\n", "not a metric name");
    refused("up-time 1\n", "invalid metric name up-time");
    refused("up.time 1\n", "invalid metric name up.time");
    refused("{a=\"b\"} 1\n", "not a metric name");
    refused("# TYPE 1up gauge\n", "not a metric name");
    refused("# HELP up-time text\n", "invalid metric name up-time");
    refused("up{1a=\"b\"} 1\n", "not a label name");
    refused("up{a-b=\"c\"} 1\n", "no = after label a");
    refused("up{a:b=\"c\"} 1\n", "no = after label a");
    refused("up{__name__=\"x\"} 1\n", "label name __name__ is reserved");
    refused("up{a=\"1\",a=\"2\"} 1\n", "label a twice");
}

#[test]
fn refuses_label_values_not_quoted_or_escaped() {
    refused(
        "up{probe=\"we\"ird\"} 1\n",
        "after the value of label probe",
    );
    refused("up{probe=\"tab\\there\"} 1\n", "invalid escape");
    refused("up{probe=\"open} 1\n", "is not closed");
    refused("up{probe=bare} 1\n", "is not quoted");
    refused("up{probe='single'} 1\n", "is not quoted");
    refused("up{a=\"1\" b=\"2\"} 1\n", "after the value of label a");
    refused("up{a=\"1\",,} 1\n", "not a label name");
    refused("up{a=\"1\"\n", "after the value of label a");
    refused("# HELP up A \\t tab.\n", "invalid escape");
}

#[test]
fn refuses_a_duplicate_series() {
    refused("up 1\nup 2\n", "duplicate series");
    refused(
        "up{a=\"1\",b=\"2\"} 1\nup{b=\"2\",a=\"1\"} 1\n",
        "duplicate series",
    );
    refused("up 1 1000\nup 1 2000\n", "duplicate series");
    // Same labels on different names, or different labels, are two series.
    parse("up{a=\"1\"} 1\nup{a=\"2\"} 1\nup_too{a=\"1\"} 1\n").unwrap();
}

#[test]
fn refuses_type_or_help_out_of_place() {
    refused("up 1\n# TYPE up gauge\n", "TYPE for up after its samples");
    refused("# TYPE up gauge\n# TYPE up gauge\nup 1\n", "a second TYPE");
    refused("# HELP up a\n# HELP up b\nup 1\n", "a second HELP");
    refused("# TYPE up gauges\nup 1\n", "unknown metric type");
    refused("# TYPE up Gauge\nup 1\n", "unknown metric type");
    refused("# TYPE up gauge extra\nup 1\n", "unknown metric type");
    refused("# TYPE up\nup 1\n", "unknown metric type");
}

#[test]
fn refuses_a_family_whose_lines_are_split() {
    refused("a 1\nb 1\na{x=\"y\"} 1\n", "family a are not together");
    refused(
        "# HELP a A.\nb 1\n# TYPE a gauge\n",
        "family a are not together",
    );
    // A plain comment or a blank line does not end a family.
    parse("# TYPE a gauge\n\n# note\na 1\n").unwrap();
}

#[test]
fn refuses_values_and_timestamps_that_are_not_numbers() {
    for value in [
        "one", "1,5", "1.2.3", "0x1p3", "0x10", "1_000", "+NaN", "-nan", "1e400", "1e", ".", "",
        "--1", "Inf1", "1\r",
    ] {
        refused(&format!("up {value}\n"), "the value is not a number");
    }
    refused("up{a=\"b\"}\n", "the value is not a number");
    for ok in [
        "1",
        "-1",
        "+1.5",
        ".5",
        "5.",
        "1e-3",
        "1E+3",
        "inf",
        "+Infinity",
        "nan",
    ] {
        parse(&format!("up {ok}\n")).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    refused("up 1 1.5\n", "is not integer milliseconds");
    refused("up 1 soon\n", "is not integer milliseconds");
    refused("up 1 1000 extra\n", "after the value");
}

#[test]
fn refuses_histograms_and_summaries_without_their_bound() {
    refused(
        "# TYPE h histogram\nh_bucket 1\n",
        "h_bucket needs a numeric le label",
    );
    refused(
        "# TYPE h histogram\nh_bucket{le=\"big\"} 1\n",
        "h_bucket needs a numeric le label",
    );
    refused(
        "# TYPE h histogram\nh 1\n",
        "has only _bucket, _sum and _count",
    );
    refused(
        "# TYPE s summary\ns 1\n",
        "s needs a numeric quantile label",
    );
}

#[test]
fn refuses_text_whose_last_line_has_no_newline() {
    refused("up 1", "does not end with a newline");
    refused("# HELP up text", "does not end with a newline");
}

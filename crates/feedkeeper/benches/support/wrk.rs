//! Running `wrk` and reading its report: requests per second, the 99th percentile latency and
//! the answers that were not 2xx. Shared by the benchmarks that load the HTTP server.

use std::process::Command;

#[derive(Clone, Debug)]
pub struct WrkResult {
    pub rps: f64,
    pub p99_ms: f64,
    pub non_2xx: u64,
}

impl WrkResult {
    /// The median requests per second and, separately, the median p99.
    #[allow(dead_code)]
    pub fn median(runs: &[WrkResult]) -> WrkResult {
        let middle = |mut values: Vec<f64>| {
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        WrkResult {
            rps: middle(runs.iter().map(|r| r.rps).collect()),
            p99_ms: middle(runs.iter().map(|r| r.p99_ms).collect()),
            non_2xx: runs.iter().map(|r| r.non_2xx).sum(),
        }
    }
}

/// One wrk run of `seconds` against `url` with `connections` on `threads` threads, extra
/// `headers` and an optional Lua `script`.
pub fn wrk(
    url: &str,
    threads: u32,
    connections: u32,
    seconds: u32,
    headers: &[String],
    script: Option<&std::path::Path>,
) -> anyhow::Result<WrkResult> {
    let mut command = Command::new("wrk");
    command.args([
        &format!("-t{threads}"),
        &format!("-c{connections}"),
        &format!("-d{seconds}s"),
        "--latency",
    ]);
    for header in headers {
        command.args(["-H", header]);
    }
    if let Some(script) = script {
        command.args(["-s", &script.display().to_string()]);
    }
    let out = command.arg(url).output()?;
    let report = String::from_utf8_lossy(&out.stdout);
    let rps = report
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| anyhow::anyhow!("no Requests/sec for {url} in:\n{report}"))?;
    let p99 = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(str::trim)
        .ok_or_else(|| anyhow::anyhow!("no 99% latency for {url} in:\n{report}"))?;
    let non_2xx = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Ok(WrkResult {
        rps,
        p99_ms: parse_duration_ms(p99)?,
        non_2xx,
    })
}

/// Whether `tool` is on the PATH.
pub fn on_path(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// wrk's `1.23ms`, `850.00us`, `1.02s`.
fn parse_duration_ms(s: &str) -> anyhow::Result<f64> {
    let (number, factor) = if let Some(v) = s.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = s.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1000.0)
    } else {
        anyhow::bail!("unknown duration {s:?}")
    };
    Ok(number.trim().parse::<f64>()? * factor)
}

//! `sluice run --report FILE`: the run as one self-contained HTML page, for
//! batch migrations nobody watches live. Counts and their balance, dead
//! letters by reason with the first examples, throughput over time, time
//! per stage, plugin versions. No script, no external asset: it opens
//! offline, from a mail attachment or an archive.
//!
//! Everything in it that came from data (positions, messages, field
//! names, versions) is HTML-escaped by `maud`: a hostile record can put
//! text in the page, never markup.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::control::TimePoint;
use crate::pipeline::Summary;

const STYLE: &str = "
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:64rem;color:#1d2330;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.1rem;margin-top:2rem;border-bottom:1px solid #d8dce5}
.sub{color:#5a6273;margin-top:0}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #eceef3;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#16794c;font-weight:600}.bad{color:#b3261e;font-weight:600}
.cards{display:flex;gap:.8rem;flex-wrap:wrap}
.card{border:1px solid #d8dce5;border-radius:6px;padding:.6rem .9rem;min-width:8rem}
.card b{display:block;font-size:1.3rem;font-variant-numeric:tabular-nums}
code{font-size:12px;background:#f3f4f8;padding:0 .2rem;border-radius:3px}
.ex{color:#3d4452;font-size:13px;margin:.1rem 0}
svg{width:100%;height:auto;background:#fafbfd;border:1px solid #eceef3;border-radius:6px}
";

/// The report of a finished (or stopped) run.
pub fn render(summary: &Summary) -> String {
    let s = summary;
    let page: Markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Sluice run report: " (s.pipeline) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "Pipeline " code { (s.pipeline) } }
                p.sub {
                    @if s.stopped { "Stopped" } @else { "Finished" }
                    " after " (format!("{:.2}", s.elapsed_ms as f64 / 1000.0)) " s, "
                    (format!("{:.0}", s.records_per_sec)) " records/s. "
                    @if s.resumed_after > 0 {
                        "Resumed after " (s.resumed_after) " records committed by earlier runs."
                    }
                }
                (counts(s))
                h2 { "Throughput" }
                (chart(&s.timeline))
                h2 { "Dead letters by reason" }
                (reasons(s))
                h2 { "Time per stage" }
                (stages(s))
                h2 { "Plugins" }
                (plugins(s))
                p.sub {
                    "Written by sluice " (env!("CARGO_PKG_VERSION")) " at "
                    (chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC")) "."
                }
            }
        }
    };
    page.into_string()
}

fn counts(s: &Summary) -> Markup {
    html! {
        div.cards {
            div.card { "records in" b { (s.records_in) } }
            div.card { "written" b { (s.written) } }
            div.card { "dropped" b { (s.dropped) } }
            div.card { "dead-lettered" b { (s.dead_lettered) } }
            @if s.expanded > 0 { div.card { "expanded" b { "+" (s.expanded) } } }
        }
        p {
            @if s.balances() {
                span.ok { "Every record is accounted for: " }
            } @else {
                span.bad { "The counts do not balance: " }
            }
            "in " (s.records_in) " + expanded " (s.expanded) " = written " (s.written)
            " + dropped " (s.dropped) " + dead-lettered " (s.dead_lettered) "."
        }
        table {
            tr { th { "source" } td { (s.source) } }
            tr { th { "sink" } td { (s.sink) } }
            tr { th { "dead-letter sink" } td { (s.dead_letter) } }
            @if let Some(lag) = &s.lag {
                tr {
                    th { "lag at the end" }
                    td {
                        @if let Some(r) = lag.records { (r) " records, " } @else { (lag.bytes) " bytes, " }
                        (format!("{:.1}", lag.seconds)) " s"
                        @if let Some(w) = &lag.warning { br; span.bad { (w) } }
                    }
                }
            }
            @if s.reloads > 0 || s.reload_failures > 0 {
                tr {
                    th { "hot reload" }
                    td { (s.reloads) " versions swapped in, " (s.reload_failures) " candidates refused" }
                }
            }
        }
    }
}

fn reasons(s: &Summary) -> Markup {
    html! {
        @if s.reasons.is_empty() {
            p { "None." }
        } @else {
            table {
                tr { th { "stage: code" } th.n { "records" } th { "first examples" } }
                @for (reason, n) in &s.reasons {
                    tr {
                        td { code { (reason) } }
                        td.n { (n) }
                        td {
                            @for e in s.examples.get(reason).into_iter().flatten() {
                                p.ex {
                                    (e.position)
                                    @if let Some(f) = &e.field { ", field " code { (f) } }
                                    @if let Some(v) = &e.plugin_version { ", version " code { (v) } }
                                    ": " (e.message)
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn stages(s: &Summary) -> Markup {
    html! {
        table {
            tr { th { "stage" } th { "own work (ms)" } th.n { "waiting for input (ms)" } th.n { "waiting for output (ms)" } }
            @for st in &s.profile.stages {
                tr {
                    td { code { (st.stage) } }
                    td {
                        @for (i, (part, ms)) in st.work_ms.iter().enumerate() {
                            @if i > 0 { ", " }
                            (part) " " (format!("{ms:.0}"))
                        }
                    }
                    td.n { (format!("{:.0}", st.waiting_for_input_ms)) }
                    td.n { (format!("{:.0}", st.waiting_for_output_ms)) }
                }
            }
        }
    }
}

fn plugins(s: &Summary) -> Markup {
    html! {
        @if s.plugins.is_empty() {
            p { "No transforms." }
        } @else {
            table {
                tr { th { "transform" } th { "version at the end" } th.n { "time in plugin (ms)" } th.n { "retried batches" } th.n { "failed batches" } th { "input records per version" } }
                @for p in &s.plugins {
                    tr {
                        td { code { (p.name) } }
                        td { code { (p.version) } }
                        td.n { (p.busy_ms) }
                        td.n { (p.retries) }
                        td.n { (p.failures) }
                        td {
                            @for (i, (v, n)) in p.records_by_version.iter().enumerate() {
                                @if i > 0 { ", " }
                                code { (v) } " " (n)
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Records per second between consecutive samples, as an SVG line chart.
fn chart(points: &[TimePoint]) -> Markup {
    let rates: Vec<(f64, f64)> = points
        .windows(2)
        .filter(|w| w[1].ms > w[0].ms)
        .map(|w| {
            let secs = (w[1].ms - w[0].ms) as f64 / 1000.0;
            let n = w[1].records_in.saturating_sub(w[0].records_in) as f64;
            (w[1].ms as f64 / 1000.0, n / secs)
        })
        .collect();
    if rates.len() < 2 {
        return html! { p { "The run was too short to chart." } };
    }
    let (w, h, pad) = (800.0, 220.0, 40.0);
    let t_max = rates.last().map_or(1.0, |r| r.0).max(1e-9);
    let r_max = rates.iter().map(|r| r.1).fold(0.0, f64::max).max(1.0);
    let line: Vec<String> = rates
        .iter()
        .map(|(t, r)| {
            format!(
                "{:.1},{:.1}",
                pad + t / t_max * (w - 2.0 * pad),
                h - pad - r / r_max * (h - 2.0 * pad)
            )
        })
        .collect();
    html! {
        svg viewBox=(format!("0 0 {w} {h}")) role="img" aria-label="records per second over the run" {
            line x1=(pad) y1=(h - pad) x2=(w - pad) y2=(h - pad) stroke="#9aa1b0" {}
            line x1=(pad) y1=(pad) x2=(pad) y2=(h - pad) stroke="#9aa1b0" {}
            polyline points=(line.join(" ")) fill="none" stroke="#2f6fde" stroke-width="2" {}
            text x=(pad) y=(pad - 8.0) font-size="12" { (format!("{r_max:.0}")) " records/s" }
            text x=(w - pad) y=(h - pad + 18.0) font-size="12" text-anchor="end" { (format!("{t_max:.1}")) " s" }
            text x=(pad) y=(h - pad + 18.0) font-size="12" { "0" }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::control::ReasonExample;
    use crate::pipeline::{PluginSummary, Profile};

    fn summary() -> Summary {
        let hostile = "<script>alert(1)</script>";
        Summary {
            pipeline: format!("crm {hostile}"),
            source: "csv in.csv".into(),
            sink: "sqlite out.db".into(),
            dead_letter: "jsonl dl.jsonl".into(),
            records_in: 1000,
            written: 900,
            dropped: 60,
            dead_lettered: 40,
            expanded: 0,
            reasons: BTreeMap::from([("validate: invalid_email".to_string(), 40)]),
            examples: BTreeMap::from([(
                "validate: invalid_email".to_string(),
                vec![ReasonExample {
                    position: "line 7".into(),
                    field: Some("email".into()),
                    message: format!("`a@` is not an address {hostile}"),
                    plugin_version: Some("0123456789ab".into()),
                }],
            )]),
            timeline: (0..5)
                .map(|i| TimePoint {
                    ms: i * 250,
                    records_in: i * 250,
                    written: i * 200,
                    dead_lettered: i * 10,
                })
                .collect(),
            plugins: vec![PluginSummary {
                name: "validate".into(),
                version: "0123456789ab".into(),
                busy_ms: 12,
                retries: 0,
                failures: 0,
                records_by_version: vec![("0123456789ab".into(), 1000)],
            }],
            reloads: 0,
            reload_failures: 0,
            elapsed_ms: 1000,
            records_per_sec: 1000.0,
            stopped: false,
            resumed_after: 0,
            lag: None,
            profile: Profile { stages: vec![] },
        }
    }

    #[test]
    fn the_report_shows_the_counts_examples_and_chart_and_escapes_what_came_from_data() {
        let page = render(&summary());
        assert!(page.starts_with("<!DOCTYPE html>"));
        for want in [
            "<b>1000</b>",
            "<b>900</b>",
            "<b>40</b>",
            "Every record is accounted for",
            "validate: invalid_email",
            "line 7",
            "<polyline",
            "0123456789ab",
        ] {
            assert!(page.contains(want), "missing {want}");
        }
        assert!(!page.contains("<script"), "data became markup");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        // Self-contained: no external asset.
        assert!(!page.contains("src=") && !page.contains("href="));
    }

    #[test]
    fn counts_that_do_not_balance_say_so() {
        let mut s = summary();
        s.written = 899;
        assert!(render(&s).contains("The counts do not balance"));
    }
}

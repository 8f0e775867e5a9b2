//! The exposition of a collection: the collectors' families and the exporter's own, in the
//! format the scraper asks for (`Accept`), gzipped when it accepts that (`Accept-Encoding`).

use std::sync::Arc;

use axum::http::HeaderValue;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use crate::collectors::{
    Outcome, Sample, Snapshot, View, gauge, gauge_family, labels, unix_seconds,
};

/// The exposition formats a scraper can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// The classic Prometheus text format, version 0.0.4.
    Text,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// A snapshot with the exporter's own state at the time, ready to encode.
#[derive(Debug)]
pub struct Exposition {
    pub snapshot: Arc<Snapshot>,
    /// Requests so far, as (endpoint, status, count).
    pub requests: Vec<(String, String, u64)>,
    /// How configuration reloads went (the flags' cluster on `/metrics` only).
    pub reloads: Option<Arc<super::reloads::Reloads>>,
}

impl Exposition {
    pub fn render(self, format: Format) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = self.write(format, &mut out);
        out
    }

    /// Writes the exposition into `out` as it is encoded, gzipped at `level` when given: the
    /// whole text is never in memory (at 50,000 guests with every collector it is 138 MB,
    /// its gzip 17 MB). Fails when `out` does (the scraper left).
    pub fn write_to<W: std::io::Write>(
        self,
        format: Format,
        level: Option<flate2::Compression>,
        out: W,
    ) -> std::io::Result<W> {
        let failed = || std::io::Error::other("the exposition was not written whole");
        match level {
            Some(level) => {
                let encoder = flate2::write::GzEncoder::new(out, level);
                // Label by label the pieces are small: deflate takes them 64 KiB at a time.
                let mut text = Text(std::io::BufWriter::with_capacity(64 * 1024, encoder));
                self.write(format, &mut text).map_err(|_| failed())?;
                text.0.into_inner().map_err(|_| failed())?.finish()
            }
            None => {
                let mut text = Text(out);
                self.write(format, &mut text).map_err(|_| failed())?;
                Ok(text.0)
            }
        }
    }

    fn write(self, format: Format, out: &mut impl std::fmt::Write) -> std::fmt::Result {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(self));
        match format {
            Format::Text => prometheus_client::encoding::prometheus_text::encode(out, &registry),
            Format::OpenMetrics => prometheus_client::encoding::text::encode(out, &registry),
        }
    }
}

/// Text written into a byte stream.
struct Text<W>(W);

impl<W: std::io::Write> std::fmt::Write for Text<W> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.write_all(s.as_bytes()).map_err(|_| std::fmt::Error)
    }
}

impl prometheus_client::collector::Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let s = &self.snapshot;
        // Nodes whose own requests answered 595/596 in this collection count as down.
        let mut unreachable: Vec<String> = s
            .outcomes
            .iter()
            .filter(|o| o.fresh)
            .flat_map(|o| o.kept.collected.unreachable.iter().cloned())
            .collect();
        unreachable.sort();
        unreachable.dedup();
        let view = View {
            taken_at: s.taken_at,
            inventory: &s.inventory,
            unreachable: &unreachable,
        };
        for outcome in &s.outcomes {
            outcome.kept.collected.data.encode(&view, &mut encoder)?;
        }

        if s.inventory_asked {
            gauge(
                &mut encoder,
                "proxmox_up",
                "Whether the last cluster-wide API request (/cluster/resources) succeeded.",
                f64::from(u8::from(s.inventory.succeeded())),
            )?;
        }
        let each = |value: &dyn Fn(&Outcome) -> Option<f64>| -> Vec<Sample> {
            s.outcomes
                .iter()
                .filter_map(|o| Some((labels([("collector", o.name)]), value(o)?)))
                .collect()
        };
        gauge_family(
            &mut encoder,
            "proxmox_exporter_collector_success",
            "Whether every API request of a collector succeeded in the last collection.",
            each(&|o| Some(f64::from(u8::from(o.kept.collected.succeeded())))),
        )?;
        gauge_family(
            &mut encoder,
            "proxmox_exporter_collector_duration_seconds",
            "How long a collector's API requests took in the last collection, in seconds.",
            each(&|o| Some(o.kept.collected.duration.as_secs_f64())),
        )?;
        if s.outcomes.iter().any(|o| o.outlives_window) {
            gauge_family(
                &mut encoder,
                "proxmox_exporter_collector_last_success_timestamp_seconds",
                "When a collector whose answers are kept longer than one cache window last \
                 fetched them without error, as a Unix time.",
                each(&|o| {
                    let at = o.last_success.filter(|_| o.outlives_window)?;
                    Some(unix_seconds(at))
                }),
            )?;
        }
        let mut requests = encoder.encode_descriptor(
            "proxmox_exporter_api_requests",
            "Proxmox API requests made, by endpoint and HTTP status (or transport failure).",
            None,
            MetricType::Counter,
        )?;
        for (endpoint, status, count) in &self.requests {
            let set = labels([("endpoint", endpoint), ("status", status)]);
            requests
                .encode_family(&set)?
                .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(count, None)?;
        }
        if let Some(reloads) = &self.reloads {
            reloads.encode(&mut encoder)?;
        }
        let version = labels([("version", env!("CARGO_PKG_VERSION"))]);
        gauge_family(
            &mut encoder,
            "proxmox_exporter_build_info",
            "The exporter's version; always 1.",
            vec![(version, 1.0)],
        )
    }
}

/// Whether `Accept-Encoding` allows gzip (and does not refuse it with `q=0`).
pub fn accepts_gzip(accept_encoding: Option<&HeaderValue>) -> bool {
    weighted(accept_encoding)
        .any(|(name, q)| (name.eq_ignore_ascii_case("gzip") || name == "*") && q > 0.0)
}

/// The items of an `Accept` or `Accept-Encoding` header with their `q` weights (1 when absent).
fn weighted(header: Option<&HeaderValue>) -> impl Iterator<Item = (&str, f32)> {
    let value = header.and_then(|v| v.to_str().ok()).unwrap_or("");
    value
        .split(',')
        .filter(|item| !item.trim().is_empty())
        .map(|item| {
            let mut parts = item.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let q = parts
                .filter_map(|p| p.strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            (name, q)
        })
}

/// OpenMetrics when the `Accept` header prefers it to the classic text format, else classic.
pub fn negotiate(accept: Option<&HeaderValue>) -> Format {
    let (mut openmetrics, mut text) = (0.0f32, 0.0f32);
    for (media, q) in weighted(accept) {
        match media.to_ascii_lowercase().as_str() {
            "application/openmetrics-text" => openmetrics = openmetrics.max(q),
            "text/plain" | "text/*" | "*/*" => text = text.max(q),
            _ => {}
        }
    }
    if openmetrics > 0.0 && openmetrics >= text {
        Format::OpenMetrics
    } else {
        Format::Text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(accept: &str) -> Format {
        negotiate(Some(&HeaderValue::from_str(accept).unwrap()))
    }

    #[test]
    fn prometheus_gets_openmetrics_and_curl_gets_text() {
        assert_eq!(
            format(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                 version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
            ),
            Format::OpenMetrics
        );
        assert_eq!(format("*/*"), Format::Text);
        assert_eq!(format("text/plain;version=0.0.4"), Format::Text);
        assert_eq!(
            format("text/plain;q=1,application/openmetrics-text;q=0.5"),
            Format::Text
        );
        assert_eq!(negotiate(None), Format::Text);
    }

    #[test]
    fn gzip_when_accepted() {
        let accepts = |v: &str| accepts_gzip(Some(&HeaderValue::from_str(v).unwrap()));
        assert!(accepts("gzip"));
        assert!(accepts("deflate, gzip;q=0.8"));
        assert!(accepts("*"));
        assert!(!accepts("gzip;q=0"));
        assert!(!accepts("identity"));
        assert!(!accepts_gzip(None));
    }
}

//! The helpers collectors write their families with: gauges with stable, sorted series,
//! label pairs, and numbers written the way Prometheus' own exporters write them.

use std::time::SystemTime;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use super::Inventory;

/// What a collector's encoding may use besides its own answers.
pub struct View<'a> {
    /// When the collection started: ages and days left count from here.
    pub taken_at: SystemTime,
    pub inventory: &'a Inventory,
    /// Nodes listed online whose own requests answered 595/596 in this collection.
    pub unreachable: &'a [String],
}

/// Seconds since the Unix epoch (negative before it).
pub fn unix_seconds(at: SystemTime) -> f64 {
    match at.duration_since(std::time::UNIX_EPOCH) {
        Ok(since) => since.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    }
}

/// One sample: its label pairs and its value.
pub type Sample = (Vec<(&'static str, String)>, f64);

/// Writes one gauge family with its samples sorted by label values, so output is stable.
/// A series must not repeat: of samples with equal labels the first given is kept, so a
/// collector puts the one it prefers first.
/// Any label set that sorts will do: a [`Sample`]'s owned labels, or labels borrowed from
/// the answers for families with a series per guest.
pub fn gauge_family<L>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    mut samples: Vec<(L, f64)>,
) -> std::fmt::Result
where
    L: prometheus_client::encoding::EncodeLabelSet + Ord,
{
    samples.sort_by(|a, b| a.0.cmp(&b.0));
    samples.dedup_by(|later, earlier| later.0 == earlier.0);
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in &samples {
        let metric = family.encode_family(labels)?;
        encode_number(metric, *value)?;
    }
    Ok(())
}

/// Writes one family from samples already sorted by label set and without repeats, borrowing
/// their label sets: no copy per sample, for families with a series per guest.
pub fn sorted_family<L: prometheus_client::encoding::EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl Iterator<Item = (L, f64)>,
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        let metric = family.encode_family(&labels)?;
        if matches!(kind, MetricType::Counter) {
            let count = value.max(0.0) as u64;
            let mut metric = metric;
            metric
                .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&count, None)?;
        } else {
            encode_number(metric, value)?;
        }
    }
    Ok(())
}

/// Writes a gauge without labels.
pub fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> std::fmt::Result {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    encode_number(metric, value)
}

/// Whole numbers are written without a fraction (`24`, not `24.0`).
fn encode_number(
    mut metric: prometheus_client::encoding::MetricEncoder,
    value: f64,
) -> std::fmt::Result {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if value.fract() == 0.0 && value.abs() < EXACT {
        metric.encode_gauge(&(value as i64))
    } else {
        metric.encode_gauge(&value)
    }
}

/// Values by vmid, looked up by binary search: 4 bytes of key a guest, no hash table (the
/// per-guest collectors keep 50,000 of them).
#[derive(Debug)]
pub struct ByVmid<T>(Vec<(u32, T)>);

impl<T> ByVmid<T> {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, vmid: u32) -> Option<&T> {
        let at = self.0.binary_search_by_key(&vmid, |(id, _)| *id).ok()?;
        Some(&self.0[at].1)
    }
}

impl<T> FromIterator<(u32, T)> for ByVmid<T> {
    fn from_iter<I: IntoIterator<Item = (u32, T)>>(values: I) -> Self {
        let mut all: Vec<(u32, T)> = values.into_iter().collect();
        all.sort_unstable_by_key(|(vmid, _)| *vmid);
        all.shrink_to_fit();
        ByVmid(all)
    }
}

/// A vmid as a label value: written as its number, ordered as its text (`100` before `99`),
/// as the series of the per-guest families are. 4 bytes where its text took 24: the
/// per-guest encodings sort 50,000 of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vmid(pub u32);

impl Ord for Vmid {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        as_text(i64::from(self.0), i64::from(other.0))
    }
}

/// Two numbers in the order of their decimal text (`100` before `99`, `-5` before `3`), as
/// label values sort, without making the text on the heap.
pub fn as_text(a: i64, b: i64) -> std::cmp::Ordering {
    /// The decimal text of `n`, at the end of `buffer`.
    fn decimal(n: i64, buffer: &mut [u8; 20]) -> &[u8] {
        let (mut rest, mut at) = (n.unsigned_abs(), buffer.len());
        loop {
            at -= 1;
            buffer[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        if n < 0 {
            at -= 1;
            buffer[at] = b'-';
        }
        &buffer[at..]
    }
    if a == b {
        return std::cmp::Ordering::Equal;
    }
    let (mut x, mut y) = ([0; 20], [0; 20]);
    decimal(a, &mut x).cmp(decimal(b, &mut y))
}

impl PartialOrd for Vmid {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl prometheus_client::encoding::EncodeLabelValue for Vmid {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder,
    ) -> std::fmt::Result {
        self.0.encode(encoder)
    }
}

/// A per-guest label set: `N` borrowed labels, then the vmid.
pub type WithVmid<'a, const N: usize> = ([(&'static str, &'a str); N], [(&'static str, Vmid); 1]);

/// Label pairs from borrowed values.
pub fn labels<const N: usize>(pairs: [(&'static str, &str); N]) -> Vec<(&'static str, String)> {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

/// A list PVE writes as one string (tags, content types), split at `separators`, sorted,
/// without repeats and joined with `joiner`: a reordering in the GUI makes no new series.
pub fn sorted_list(text: Option<&str>, separators: &[char], joiner: &str) -> String {
    let mut all: Vec<&str> = (text.unwrap_or("").split(separators))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    all.sort_unstable();
    all.dedup();
    all.join(joiner)
}

#[cfg(test)]
mod tests {
    use super::{ByVmid, Vmid};

    #[test]
    fn vmids_sort_as_their_text_and_are_written_as_numbers() {
        let mut ids: Vec<Vmid> = [99, 100, 1000, 9, 101, 4_294_967_295, 0]
            .into_iter()
            .map(Vmid)
            .collect();
        ids.sort();
        let as_text: Vec<u32> = ids.iter().map(|v| v.0).collect();
        let mut expected: Vec<String> = as_text.iter().map(u32::to_string).collect();
        expected.sort();
        let written: Vec<String> = as_text.iter().map(u32::to_string).collect();
        assert_eq!(written, expected);
        assert_eq!(as_text, [0, 100, 1000, 101, 4_294_967_295, 9, 99]);
    }

    #[test]
    fn numbers_compare_as_their_text() {
        let numbers = [i64::MIN, -100, -99, -5, 0, 3, 99, 100, i64::MAX];
        for a in numbers {
            for b in numbers {
                let text = a.to_string().cmp(&b.to_string());
                assert_eq!(super::as_text(a, b), text, "{a} against {b}");
            }
        }
    }

    #[test]
    fn values_are_found_by_vmid_in_any_order_given() {
        let names: ByVmid<&str> = [(300, "c"), (100, "a"), (200, "b")].into_iter().collect();
        assert_eq!(names.get(100), Some(&"a"));
        assert_eq!(names.get(300), Some(&"c"));
        assert_eq!(names.get(150), None);
    }
}

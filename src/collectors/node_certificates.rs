//! `/nodes/{node}/certificates/info` for every online node: days until each certificate expires.

use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::DescriptorEncoder;

use super::{
    BoxFuture, Collected, Collector, Context, Cost, Families, Sample, Spec, View, each_online_node,
};
use super::{gauge_family, labels};
use crate::pve::Known;
use crate::pve::client::types::GetNodesNodeCertificatesInfoResponseDataItem;

pub const NAME: &str = "node_certificates";

pub type Certificate = GetNodesNodeCertificatesInfoResponseDataItem;

const DAY: i64 = 86_400;

pub struct NodeCertificates;
pub static COLLECTOR: NodeCertificates = NodeCertificates;

pub static SPEC: Spec = Spec {
    name: NAME,
    enabled_by_default: true,
    operations: &["GET /nodes/{node}/certificates/info"],
    cost: Cost::PerNode,
    refresh: None,
};

impl Collector for NodeCertificates {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }
    fn fetch<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Collected<Box<dyn Families>>> {
        Box::pin(each_online_node(ctx, fetch, |nodes| {
            Box::new(Certificates(nodes))
        }))
    }
}

#[derive(Debug)]
struct Certificates(Vec<(String, Vec<Certificate>)>);

impl Families for Certificates {
    fn encode(&self, view: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        encode(&self.0, view.taken_at, encoder)
    }
}

node_get!(pub fetch, "certificates/info", get_nodes_node_certificates_info, Vec<Certificate>);

/// Whole days from `now` until `notafter` (a Unix time), rounded down: negative once expired.
pub fn days_left(notafter: i64, now: SystemTime) -> i64 {
    let now = match now.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    };
    notafter.saturating_sub(now).div_euclid(DAY)
}

pub fn encode(
    nodes: &[(String, Vec<Certificate>)],
    now: SystemTime,
    encoder: &mut DescriptorEncoder,
) -> std::fmt::Result {
    let mut samples: Vec<(Sample, i64)> = Vec::new();
    for (node, certificates) in nodes {
        for cert in certificates {
            let (Some(subject), Some(notafter)) = (cert.subject.known(), cert.notafter.known())
            else {
                continue;
            };
            let days = days_left(notafter, now);
            samples.push((
                (labels([("node", node), ("subject", subject)]), days as f64),
                days,
            ));
        }
    }
    // Two certificates with one subject on a node: report the one that expires first.
    samples.sort_by_key(|(_, days)| *days);
    gauge_family(
        encoder,
        "proxmox_node_days_until_cert_expiration",
        "Whole days until a node's certificate expires; negative once it has expired.",
        samples.into_iter().map(|(sample, _)| sample).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn days_round_down_and_go_negative() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000 * DAY as u64);
        let at = |days: i64, secs: i64| 1_000 * DAY + days * DAY + secs;
        assert_eq!(days_left(at(30, 0), now), 30);
        assert_eq!(days_left(at(29, DAY - 1), now), 29);
        assert_eq!(days_left(at(0, 1), now), 0);
        assert_eq!(days_left(at(0, -1), now), -1);
        assert_eq!(days_left(at(-3, 0), now), -3);
    }
}

//! `subscription`: `/nodes/{node}/subscription` for every online node: whether the node's
//! subscription is active, its level, and when it is next due. Subscriptions change rarely, so
//! the answers are kept for an hour by default. The key and server id are never exported.

use std::time::Duration;

use prometheus_client::encoding::DescriptorEncoder;

use super::{BoxFuture, Collected, Collector, Context, Cost, Families, Sample, Spec, View};
use super::{each_online_node, gauge_family, labels};
use crate::pve::Known;
use crate::pve::client::types::GetNodesNodeSubscriptionResponseData;

pub const NAME: &str = "subscription";

pub type Subscription = GetNodesNodeSubscriptionResponseData;

pub struct Subscriptions;
pub static COLLECTOR: Subscriptions = Subscriptions;

pub static SPEC: Spec = Spec {
    name: NAME,
    enabled_by_default: false,
    operations: &["GET /nodes/{node}/subscription"],
    cost: Cost::PerNode,
    refresh: Some(Duration::from_secs(3600)),
};

impl Collector for Subscriptions {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }
    fn fetch<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Collected<Box<dyn Families>>> {
        Box::pin(each_online_node(ctx, fetch, |nodes| Box::new(Nodes(nodes))))
    }
}

node_get!(pub fetch, "subscription", get_nodes_node_subscription, Subscription);

#[derive(Debug)]
struct Nodes(Vec<(String, Subscription)>);

impl Families for Nodes {
    fn encode(&self, _: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let status = |s: &Subscription| s.status.known().unwrap_or("").to_ascii_lowercase();
        let active: Vec<Sample> = self
            .0
            .iter()
            .map(|(node, s)| {
                let on = status(s) == "active";
                (labels([("node", node)]), f64::from(u8::from(on)))
            })
            .collect();
        gauge_family(
            encoder,
            "proxmox_node_subscription_active",
            "Whether a node's subscription is active (1) or not (0: none, expired, invalid, …).",
            active,
        )?;
        let infos: Vec<Sample> = self
            .0
            .iter()
            .map(|(node, s)| {
                let set = labels([
                    ("level", s.level.known().unwrap_or("")),
                    ("node", node),
                    ("product", s.productname.known().unwrap_or("")),
                    ("status", &status(s)),
                ]);
                (set, 1.0)
            })
            .collect();
        gauge_family(
            encoder,
            "proxmox_node_subscription_info",
            "A node's subscription status (active, notfound, expired, …), level and product; \
             always 1.",
            infos,
        )?;
        let due: Vec<Sample> = self
            .0
            .iter()
            .filter_map(|(node, s)| {
                let day = s.nextduedate.known().and_then(parse_date)?;
                Some((labels([("node", node)]), day as f64))
            })
            .collect();
        gauge_family(
            encoder,
            "proxmox_node_subscription_next_due_timestamp_seconds",
            "When a node's subscription is next due (start of that day, UTC), as a Unix time.",
            due,
        )
    }
}

/// `YYYY-MM-DD` as the Unix time of that day's start (UTC).
pub fn parse_date(text: &str) -> Option<i64> {
    let mut parts = text.trim().splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let day: i64 = parts.next()?.get(..2)?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from the civil calendar (proleptic Gregorian), counted in 400-year eras.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    Some((era * 146_097 + day_of_era - 719_468) * 86_400)
}

#[cfg(test)]
mod tests {
    use super::parse_date;

    #[test]
    fn due_dates() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2027-03-01"), Some(1_803_859_200));
        assert_eq!(parse_date("2024-02-29"), Some(1_709_164_800));
        assert_eq!(parse_date(""), None);
        assert_eq!(parse_date("2027-13-01"), None);
        assert_eq!(parse_date("soon"), None);
    }
}

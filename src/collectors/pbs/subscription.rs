//! `pbs_subscription`: the backup server's subscription (`/nodes/localhost/subscription`):
//! whether it is active, its product and when it is next due; kept for an hour. The key and
//! server id are never exported.

use std::time::Duration;

use prometheus_client::encoding::DescriptorEncoder;

use super::{NODE, get, single};
use crate::collectors::subscription::parse_date;
use crate::collectors::{BoxFuture, Collected, Collector, Context, Cost, Families, Spec, View};
use crate::collectors::{gauge, gauge_family, labels};
use crate::pbs::client::types::GetNodesNodeSubscriptionResponseData;
use crate::pve::Known;

pub const NAME: &str = "pbs_subscription";

pub struct Subscription;
pub static COLLECTOR: Subscription = Subscription;

pub static SPEC: Spec = Spec {
    name: NAME,
    enabled_by_default: true,
    operations: &["GET /nodes/{node}/subscription"],
    cost: Cost::One,
    refresh: Some(Duration::from_secs(3600)),
};

impl Collector for Subscription {
    fn spec(&self) -> &'static Spec {
        &SPEC
    }
    fn fetch<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Collected<Box<dyn Families>>> {
        let path = format!("/nodes/{NODE}/subscription");
        Box::pin(async move {
            let answer = get(&ctx.dispatcher, &path, |c| async move {
                c.get_nodes_node_subscription().node(NODE).send().await
            });
            single(answer, |a| Box::new(Held(a.data))).await
        })
    }
}

#[derive(Debug)]
struct Held(GetNodesNodeSubscriptionResponseData);

impl Families for Held {
    fn encode(&self, _: &View<'_>, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let s = &self.0;
        let status = s.status.known().unwrap_or("").to_ascii_lowercase();
        gauge(
            encoder,
            "proxmox_pbs_subscription_active",
            "Whether the backup server's subscription is active (1) or not (0: none, expired, \
             invalid, …).",
            f64::from(u8::from(status == "active")),
        )?;
        let set = labels([
            ("product", s.productname.known().unwrap_or("")),
            ("status", &status),
        ]);
        gauge_family(
            encoder,
            "proxmox_pbs_subscription_info",
            "The backup server's subscription status (active, notfound, expired, …) and \
             product; always 1.",
            vec![(set, 1.0)],
        )?;
        if let Some(due) = s.nextduedate.known().and_then(parse_date) {
            gauge(
                encoder,
                "proxmox_pbs_subscription_next_due_timestamp_seconds",
                "When the backup server's subscription is next due (start of that day, UTC), \
                 as a Unix time.",
                due as f64,
            )?;
        }
        Ok(())
    }
}

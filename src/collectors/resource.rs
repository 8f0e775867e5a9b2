//! One row of `/cluster/resources` as the exporter keeps it: the generated row (512 bytes,
//! every field an `Option` of a lenient scalar) converted while the answer is decoded into
//! 248 bytes: numbers without the second `Option`, the fields only storages, HA guests, locked
//! guests or pool members have kept aside. 50,000 guests: 12 MB instead of 26.

use compact_str::CompactString;
use serde::Deserialize;

use crate::pve::Known;
use crate::pve::client::types::GetClusterResourcesResponseDataItem as Generated;
use crate::pve::lenient::PveString;

/// An integer PVE sent, or none (`i64::MIN` stands for none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Int(i64);

impl Int {
    fn new(value: Option<i64>) -> Int {
        Int(value.unwrap_or(i64::MIN))
    }
}

impl Known for Int {
    type Value<'a> = i64;
    fn known(&self) -> Option<i64> {
        (self.0 != i64::MIN).then_some(self.0)
    }
}

/// A number PVE sent, or none (NaN stands for none; PVE's non-finite values are none too).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Num(f64);

impl Known for Num {
    type Value<'a> = f64;
    fn known(&self) -> Option<f64> {
        (!self.0.is_nan()).then_some(self.0)
    }
}

/// A flag PVE sent, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flag(Option<bool>);

impl Known for Flag {
    type Value<'a> = bool;
    fn known(&self) -> Option<bool> {
        self.0
    }
}

/// A row of `/cluster/resources`. Read its fields as the generated row's (`row.node.known()`);
/// the rarer ones through methods (`row.hastate()`).
#[derive(Clone, Debug, Deserialize)]
#[serde(from = "Generated")]
pub struct Resource {
    pub id: PveString,
    pub type_: PveString,
    pub node: PveString,
    pub name: PveString,
    pub status: PveString,
    pub tags: PveText,
    pub cpu: Num,
    pub maxcpu: Num,
    pub mem: Int,
    pub maxmem: Int,
    pub disk: Int,
    pub maxdisk: Int,
    pub diskread: Int,
    pub diskwrite: Int,
    pub netin: Int,
    pub netout: Int,
    pub uptime: Int,
    pub vmid: Int,
    pub shared: Flag,
    pub template: Flag,
    rare: Option<Box<Rare>>,
}

/// A string most rows lack: 16 bytes, and an allocation only when present.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PveText(Option<Box<str>>);

impl Known for PveText {
    type Value<'a> = &'a str;
    fn known(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

/// The fields of storages (content, storage, plugin type), HA guests (state), locked guests
/// and pool members.
#[derive(Clone, Debug, Default)]
struct Rare {
    hastate: Option<CompactString>,
    lock: Option<CompactString>,
    content: Option<CompactString>,
    storage: Option<CompactString>,
    plugintype: Option<CompactString>,
    pool: Option<CompactString>,
}

impl Resource {
    pub fn hastate(&self) -> Option<&str> {
        self.rare.as_ref()?.hastate.as_deref()
    }
    pub fn lock(&self) -> Option<&str> {
        self.rare.as_ref()?.lock.as_deref()
    }
    pub fn content(&self) -> Option<&str> {
        self.rare.as_ref()?.content.as_deref()
    }
    pub fn storage(&self) -> Option<&str> {
        self.rare.as_ref()?.storage.as_deref()
    }
    pub fn plugintype(&self) -> Option<&str> {
        self.rare.as_ref()?.plugintype.as_deref()
    }
    pub fn pool(&self) -> Option<&str> {
        self.rare.as_ref()?.pool.as_deref()
    }
}

fn string(field: Option<PveString>) -> PveString {
    field.unwrap_or_default()
}

fn text(field: Option<PveString>) -> Option<CompactString> {
    field.and_then(|s| s.0)
}

impl From<Generated> for Resource {
    fn from(g: Generated) -> Resource {
        let rare = Rare {
            hastate: text(g.hastate),
            lock: text(g.lock),
            content: text(g.content),
            storage: text(g.storage),
            plugintype: text(g.plugintype),
            pool: text(g.pool),
        };
        let any_rare = [
            &rare.hastate,
            &rare.lock,
            &rare.content,
            &rare.storage,
            &rare.plugintype,
            &rare.pool,
        ]
        .iter()
        .any(|f| f.is_some());
        Resource {
            id: string(g.id),
            type_: string(g.type_),
            node: string(g.node),
            name: string(g.name),
            status: string(g.status),
            tags: PveText(g.tags.and_then(|t| t.0).map(|t| Box::from(t.as_str()))),
            cpu: Num(g.cpu.known().unwrap_or(f64::NAN)),
            maxcpu: Num(g.maxcpu.known().unwrap_or(f64::NAN)),
            mem: Int::new(g.mem.known()),
            maxmem: Int::new(g.maxmem.known()),
            disk: Int::new(g.disk.known()),
            maxdisk: Int::new(g.maxdisk.known()),
            diskread: Int::new(g.diskread.known()),
            diskwrite: Int::new(g.diskwrite.known()),
            netin: Int::new(g.netin.known()),
            netout: Int::new(g.netout.known()),
            uptime: Int::new(g.uptime.known()),
            vmid: Int::new(g.vmid.known()),
            shared: Flag(g.shared.known()),
            template: Flag(g.template.known()),
            rare: any_rare.then(|| Box::new(rare)),
        }
    }
}

/// `/cluster/resources`' answer, each row converted as soon as it is decoded.
#[derive(Debug, Deserialize)]
pub struct Answer {
    pub data: Vec<Resource>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_keeps_what_the_generated_row_held() {
        let row: serde_json::Value = serde_json::json!({
            "id": "qemu/101", "type": "qemu", "node": "atlas", "name": "db", "status": "running",
            "vmid": "101", "cpu": "0.25", "maxcpu": 8, "mem": 1024, "maxmem": "N/A",
            "template": 0, "tags": "db;prod", "hastate": "started", "lock": null,
        });
        let generated: Generated = serde_json::from_value(row.clone()).unwrap();
        let kept: Resource = serde_json::from_value(row).unwrap();
        assert_eq!(kept.id.known(), generated.id.known());
        assert_eq!(kept.vmid.known(), Some(101));
        assert_eq!(kept.cpu.known(), Some(0.25));
        assert_eq!(kept.maxcpu.known(), Some(8.0));
        assert_eq!(kept.mem.known(), Some(1024));
        assert_eq!(kept.maxmem.known(), None, "N/A is unknown");
        assert_eq!(kept.disk.known(), None, "absent is unknown");
        assert_eq!(kept.template.known(), Some(false));
        assert_eq!(kept.shared.known(), None);
        assert_eq!(kept.tags.known(), Some("db;prod"));
        assert_eq!(kept.hastate(), Some("started"));
        assert_eq!(kept.lock(), None);
        assert_eq!(kept.storage(), None);
        assert!(
            std::mem::size_of::<Resource>() <= 256,
            "{}",
            std::mem::size_of::<Resource>()
        );
    }
}

//! One row of `/cluster/resources` as the exporter keeps it: the generated row (512 bytes,
//! every field an `Option` of a lenient scalar) converted while the answer is decoded into
//! 256 bytes: numbers without the second `Option`, strings up to 24 bytes inline, the fields
//! only storages, HA guests, locked guests or pool members have kept aside. 50,000 guests:
//! 13 MB instead of 26.

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
    pub tags: PveString,
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
            tags: string(g.tags),
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
    pub data: Rows,
}

/// Rows per block of [`Rows`]: 1,024 × 256 bytes, over glibc's mmap threshold as
/// [`crate::malloc`] sets it, so that each block is mapped on its own and handed back whole
/// when the collection is dropped, never leaving holes in the heap.
const ROWS_PER_BLOCK: usize = 1024;

/// The rows of an answer, kept in blocks of [`ROWS_PER_BLOCK`] rows. A `Vec` of 50,000 rows
/// grows by doubling while they are decoded (16 MB of capacity for 13 MB of rows, and for a
/// moment the old 8 MB beside the new 16 when the allocator must copy); blocks never move
/// what is decoded and waste at most one block.
#[derive(Clone, Debug, Default)]
pub struct Rows {
    blocks: Vec<Vec<Resource>>,
    len: usize,
}

impl Rows {
    pub fn push(&mut self, row: Resource) {
        match self.blocks.last_mut() {
            Some(block) if block.len() < ROWS_PER_BLOCK => block.push(row),
            _ => {
                let mut block = Vec::with_capacity(ROWS_PER_BLOCK);
                block.push(row);
                self.blocks.push(block);
            }
        }
        self.len += 1;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Resource> + Clone {
        self.blocks.iter().flatten()
    }

    /// Keeps the rows `keep` accepts, in their order.
    pub fn retain(&mut self, mut keep: impl FnMut(&Resource) -> bool) {
        for block in &mut self.blocks {
            block.retain(&mut keep);
        }
        self.blocks.retain(|b| !b.is_empty());
        self.len = self.blocks.iter().map(Vec::len).sum();
    }
}

impl<'a> IntoIterator for &'a Rows {
    type Item = &'a Resource;
    type IntoIter = std::iter::Flatten<std::slice::Iter<'a, Vec<Resource>>>;
    fn into_iter(self) -> Self::IntoIter {
        self.blocks.iter().flatten()
    }
}

impl FromIterator<Resource> for Rows {
    fn from_iter<I: IntoIterator<Item = Resource>>(rows: I) -> Rows {
        let mut kept = Rows::default();
        for row in rows {
            kept.push(row);
        }
        kept
    }
}

impl<'de> Deserialize<'de> for Rows {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Rows, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Rows;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of resources")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Rows, A::Error> {
                let mut rows = Rows::default();
                while let Some(row) = seq.next_element::<Resource>()? {
                    rows.push(row);
                }
                Ok(rows)
            }
        }
        deserializer.deserialize_seq(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_keep_their_order_across_blocks_and_through_retain() {
        let count = ROWS_PER_BLOCK * 2 + 7;
        let answer = serde_json::json!({"data": (0..count)
            .map(|i| serde_json::json!({"id": format!("qemu/{i}"), "type": "qemu", "vmid": i}))
            .collect::<Vec<_>>()});
        let mut rows = serde_json::from_value::<Answer>(answer).unwrap().data;
        assert_eq!(rows.len(), count);
        assert_eq!(rows.blocks.len(), 3);
        let vmids =
            |rows: &Rows| -> Vec<i64> { rows.iter().filter_map(|r| r.vmid.known()).collect() };
        assert_eq!(vmids(&rows), (0..count as i64).collect::<Vec<_>>());
        // Empties the first block, thins the others.
        rows.retain(|r| {
            r.vmid
                .known()
                .is_some_and(|v| v >= ROWS_PER_BLOCK as i64 && v % 2 == 0)
        });
        let kept: Vec<i64> = (ROWS_PER_BLOCK as i64..count as i64)
            .filter(|v| v % 2 == 0)
            .collect();
        assert_eq!(vmids(&rows), kept);
        assert_eq!(rows.len(), kept.len());
        assert_eq!(rows.blocks.len(), 2);
        assert_eq!((&rows).into_iter().count(), kept.len());
        // A row pushed after the retain goes on at the end.
        rows.push(
            serde_json::from_value(serde_json::json!({"id": "node/a", "type": "node"})).unwrap(),
        );
        assert_eq!(
            rows.iter().last().and_then(|r| r.id.known()),
            Some("node/a")
        );
        assert!(serde_json::from_value::<Answer>(serde_json::json!({"data": {}})).is_err());
    }

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

//! One row of `/cluster/resources` as the exporter keeps it: the generated row (512 bytes,
//! every field an `Option` of a lenient scalar) converted while the answer is decoded into
//! 256 bytes: numbers without the second `Option`, strings up to 24 bytes inline, the fields
//! only some rows have (tags, HA state, lock, pool, a storage's) packed into one string.
//! 50,000 guests: 12.8 MB instead of 26.

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

/// A word of a field with few values (a row's `type` and `status`) in one byte: its number in
/// a table of every word seen, which begins with PVE's and takes up to [`Word::MOST`] others
/// (a value past those is kept as none: the table never grows without bound). 50,000 rows
/// keep 2.3 MB less than with the words inline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Word(u8);

impl Word {
    /// Words known before any answer: `/cluster/resources`' types and statuses.
    const PVE: [&'static str; 15] = [
        "node",
        "qemu",
        "lxc",
        "storage",
        "pool",
        "sdn",
        "network",
        "openvz",
        "running",
        "stopped",
        "online",
        "offline",
        "available",
        "unknown",
        "ok",
    ];
    /// How many words the table holds at most (number 0 stands for none).
    pub const MOST: usize = 255;

    /// The words by number less one, each set once: read without a lock.
    fn slots() -> &'static [std::sync::OnceLock<&'static str>; Word::MOST] {
        static SLOTS: [std::sync::OnceLock<&'static str>; Word::MOST] =
            [const { std::sync::OnceLock::new() }; Word::MOST];
        static PVE: std::sync::Once = std::sync::Once::new();
        PVE.call_once(|| {
            for (slot, word) in SLOTS.iter().zip(Word::PVE) {
                let _ = slot.set(word);
            }
        });
        &SLOTS
    }

    fn new(text: Option<PveString>) -> Word {
        let Some(text) = text.and_then(|t| t.0) else {
            return Word(0);
        };
        let number = |at: usize| Word(u8::try_from(at + 1).unwrap_or(0));
        let slots = Word::slots();
        let find = || {
            slots
                .iter()
                .map_while(|s| s.get())
                .position(|w| *w == text.as_str())
        };
        if let Some(at) = find() {
            return number(at);
        }
        // A new word: one writer at a time, so that two never take the same slot.
        static ADDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _adding = ADDING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = find() {
            return number(at);
        }
        let Some(at) = slots.iter().position(|s| s.get().is_none()) else {
            return Word(0);
        };
        // Leaked once per distinct word, at most MOST of them in the process's life.
        let _ = slots[at].set(Box::leak(text.as_str().into()));
        number(at)
    }
}

impl Known for Word {
    type Value<'a> = &'static str;
    fn known(&self) -> Option<&'static str> {
        let at = usize::from(self.0).checked_sub(1)?;
        Word::slots().get(at)?.get().copied()
    }
}

/// A row of `/cluster/resources`. Read its fields as the generated row's (`row.node.known()`);
/// the rarer ones through methods (`row.tags()`, `row.hastate()`).
#[derive(Clone, Debug, Deserialize)]
#[serde(from = "Generated")]
pub struct Resource {
    pub id: PveString,
    pub type_: Word,
    pub node: PveString,
    pub name: PveString,
    pub status: Word,
    pub cpu: Num,
    pub maxcpu: Num,
    pub mem: Int,
    pub maxmem: Int,
    /// A VM's memory as the host sees it (PVE 9 and later).
    pub memhost: Int,
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
    rare: Packed,
}

/// The string fields a row may lack, or most rows keep short: a guest's tags, an HA guest's
/// state, a locked guest's lock, a pool member's pool, a storage's content, name and plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Field {
    Tags = 1,
    Hastate,
    Lock,
    Content,
    Storage,
    Plugintype,
    Pool,
}

/// The [`Field`]s a row has, packed into one string: for each, its tag (a byte from 1 to 7),
/// its value's length (six bits a byte, low bits first, 0x40 on every byte but the last: ASCII,
/// so the whole stays UTF-8) and the value. Up to 24 bytes it is kept inline (an HA state and
/// a pool, or a few short tags), longer in one allocation of about its length; a box of the
/// six fields took 160 bytes whenever one of them was there.
#[derive(Clone, Debug, Default)]
struct Packed(CompactString);

impl Packed {
    fn push(&mut self, field: Field, value: Option<PveString>) {
        let Some(value) = value.and_then(|v| v.0) else {
            return;
        };
        self.0.push(char::from(field as u8));
        let mut len = value.len();
        loop {
            let low = (len & 0x3f) as u8;
            len >>= 6;
            if len == 0 {
                self.0.push(char::from(low));
                break;
            }
            self.0.push(char::from(low | 0x40));
        }
        self.0.push_str(&value);
    }

    fn get(&self, field: Field) -> Option<&str> {
        let bytes = self.0.as_bytes();
        let mut at = 0;
        while at < bytes.len() {
            let tag = bytes[at];
            at += 1;
            let (mut len, mut shift) = (0usize, 0);
            loop {
                let byte = *bytes.get(at)?;
                at += 1;
                len |= usize::from(byte & 0x3f).checked_shl(shift)?;
                shift += 6;
                if byte & 0x40 == 0 {
                    break;
                }
            }
            let value = self.0.get(at..at + len)?;
            if tag == field as u8 {
                return Some(value);
            }
            at += len;
        }
        None
    }
}

impl Resource {
    /// Tags as PVE sent them (`a;b`): `None` when the row has no `tags`, `Some("")` when
    /// PVE sent an empty list.
    pub fn tags(&self) -> Option<&str> {
        self.rare.get(Field::Tags)
    }
    pub fn hastate(&self) -> Option<&str> {
        self.rare.get(Field::Hastate)
    }
    pub fn lock(&self) -> Option<&str> {
        self.rare.get(Field::Lock)
    }
    pub fn content(&self) -> Option<&str> {
        self.rare.get(Field::Content)
    }
    pub fn storage(&self) -> Option<&str> {
        self.rare.get(Field::Storage)
    }
    pub fn plugintype(&self) -> Option<&str> {
        self.rare.get(Field::Plugintype)
    }
    pub fn pool(&self) -> Option<&str> {
        self.rare.get(Field::Pool)
    }
}

fn string(field: Option<PveString>) -> PveString {
    field.unwrap_or_default()
}

impl From<Generated> for Resource {
    fn from(g: Generated) -> Resource {
        let mut rare = Packed::default();
        for (field, value) in [
            (Field::Tags, g.tags),
            (Field::Hastate, g.hastate),
            (Field::Lock, g.lock),
            (Field::Content, g.content),
            (Field::Storage, g.storage),
            (Field::Plugintype, g.plugintype),
            (Field::Pool, g.pool),
        ] {
            rare.push(field, value);
        }
        rare.0.shrink_to_fit();
        Resource {
            id: string(g.id),
            type_: Word::new(g.type_),
            node: string(g.node),
            name: string(g.name),
            status: Word::new(g.status),
            cpu: Num(g.cpu.known().unwrap_or(f64::NAN)),
            maxcpu: Num(g.maxcpu.known().unwrap_or(f64::NAN)),
            mem: Int::new(g.mem.known()),
            maxmem: Int::new(g.maxmem.known()),
            memhost: Int::new(g.memhost.known()),
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
            rare,
        }
    }
}

/// `/cluster/resources`' answer, each row converted as soon as it is decoded.
#[derive(Debug, Deserialize)]
pub struct Answer {
    pub data: Rows,
}

/// Rows per block of [`Rows`]: 1,024 × 248 bytes, a block the allocator hands back whole
/// when the collection is dropped, never leaving holes among the small blocks that stay.
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

    const FIELDS: [Field; 7] = [
        Field::Tags,
        Field::Hastate,
        Field::Lock,
        Field::Content,
        Field::Storage,
        Field::Plugintype,
        Field::Pool,
    ];

    proptest::proptest! {
        #[test]
        fn packed_fields_read_back_as_pushed(
            values in proptest::collection::vec(proptest::option::of(".{0,300}"), 7)
        ) {
            let mut packed = Packed::default();
            for (field, value) in FIELDS.iter().zip(&values) {
                packed.push(*field, value.as_deref().map(|v| PveString(Some(v.into()))));
            }
            for (field, value) in FIELDS.iter().zip(&values) {
                proptest::prop_assert_eq!(packed.get(*field), value.as_deref());
            }
        }
    }

    #[test]
    fn short_rare_fields_take_no_allocation_and_long_ones_survive() {
        let mut packed = Packed::default();
        for (field, value) in [
            (Field::Tags, "prod"),
            (Field::Hastate, "started"),
            (Field::Pool, "tenant"),
        ] {
            packed.push(field, Some(PveString(Some(value.into()))));
        }
        assert!(!packed.0.is_heap_allocated(), "{:?}", packed.0);
        assert_eq!(packed.get(Field::Pool), Some("tenant"));
        assert_eq!(packed.get(Field::Hastate), Some("started"));
        assert_eq!(packed.get(Field::Lock), None);
        // A length over six bits, and over twelve.
        let long = "ü".repeat(3000);
        packed.push(Field::Content, Some(PveString(Some(long.as_str().into()))));
        packed.push(Field::Lock, Some(PveString(Some("".into()))));
        assert_eq!(packed.get(Field::Content), Some(long.as_str()));
        assert_eq!(packed.get(Field::Lock), Some(""));
        assert_eq!(packed.get(Field::Pool), Some("tenant"));
        // Absent and null push nothing.
        packed.push(Field::Storage, None);
        packed.push(Field::Storage, Some(PveString(None)));
        assert_eq!(packed.get(Field::Storage), None);
    }

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
    fn a_word_is_one_byte_and_reads_back() {
        let word = |text: &str| Word::new(Some(PveString(Some(text.into()))));
        assert_eq!(std::mem::size_of::<Word>(), 1);
        assert_eq!(word("qemu").known(), Some("qemu"));
        assert_eq!(word("qemu"), word("qemu"));
        // A word PVE may add later is numbered when first seen, and the same after.
        let new = word("hibernated-test-word");
        assert_eq!(new.known(), Some("hibernated-test-word"));
        assert_eq!(word("hibernated-test-word"), new);
        assert_ne!(new, word("running"));
        assert_eq!(Word::new(None).known(), None);
        assert_eq!(Word::new(Some(PveString(None))).known(), None);
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
        assert_eq!(kept.tags(), Some("db;prod"));
        assert_eq!(kept.hastate(), Some("started"));
        assert_eq!(kept.lock(), None);
        assert_eq!(kept.storage(), None);
        assert!(
            std::mem::size_of::<Resource>() <= 216,
            "{}",
            std::mem::size_of::<Resource>()
        );
    }
}

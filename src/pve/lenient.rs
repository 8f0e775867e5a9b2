//! Scalars as PVE really sends them.
//!
//! PVE's answers do not follow its own declared types: booleans come as `0`/`1`, integers and
//! numbers as strings (`"5400"`, `"1.5e+10"`), unknown values as `"N/A"`, fields are `null` or
//! missing. `build.rs` swaps these types in for every scalar of a response, so the generated
//! structs decode all of that. A value that is present but has no meaning for its type (`"N/A"`
//! for a number) decodes to "unknown" ([`Known::known`] gives `None`) rather than failing the
//! whole answer. Only a value of the wrong *shape* (an object or array where a scalar belongs)
//! is an error.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// A boolean: `true`/`false`, `0`/`1`, `"0"`/`"1"`, `"yes"`/`"no"`, `"on"`/`"off"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PveBoolean(pub Option<bool>);

/// An integer: a JSON integer, an integral or exponent float, or a string holding one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PveInteger(pub Option<i64>);

/// A number: a JSON number or a string holding one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct PveNumber(pub Option<f64>);

/// A string; numbers and booleans are kept as their JSON text. Up to 24 bytes are held
/// inline: the ids, names, node names, states and types of 50,000 rows need no allocation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PveString(pub Option<compact_str::CompactString>);

/// The value of a lenient field, when PVE sent one that means something.
pub trait Known {
    type Value<'a>
    where
        Self: 'a;
    fn known(&self) -> Option<Self::Value<'_>>;
}

impl Known for PveBoolean {
    type Value<'a> = bool;
    fn known(&self) -> Option<bool> {
        self.0
    }
}

impl Known for PveInteger {
    type Value<'a> = i64;
    fn known(&self) -> Option<i64> {
        self.0
    }
}

impl Known for PveNumber {
    type Value<'a> = f64;
    fn known(&self) -> Option<f64> {
        self.0
    }
}

impl Known for PveString {
    type Value<'a> = &'a str;
    fn known(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<T: Known> Known for Option<T> {
    type Value<'a>
        = T::Value<'a>
    where
        T: 'a;
    fn known(&self) -> Option<T::Value<'_>> {
        self.as_ref().and_then(Known::known)
    }
}

/// A string that names something (a node, a resource, a device, a job): known and not blank.
/// PVE can hold entries whose name is empty (an HA LRM entry `lrm:` when the manager's node
/// status has an empty key); a series labelled with it would stand for a thing that does not
/// exist, and a request built from it would ask the wrong path (`/nodes//status`).
pub fn named(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.trim().is_empty())
}

/// How one lenient type reads each JSON scalar.
trait FromScalar: Default {
    const EXPECTING: &'static str;
    fn from_bool(v: bool) -> Self;
    fn from_i64(v: i64) -> Self;
    fn from_u64(v: u64) -> Self;
    fn from_f64(v: f64) -> Self;
    fn from_str(v: &str) -> Self;
}

impl FromScalar for PveBoolean {
    const EXPECTING: &'static str = "a boolean, 0/1 or a boolean word";
    fn from_bool(v: bool) -> Self {
        Self(Some(v))
    }
    fn from_i64(v: i64) -> Self {
        Self(Some(v != 0))
    }
    fn from_u64(v: u64) -> Self {
        Self(Some(v != 0))
    }
    fn from_f64(v: f64) -> Self {
        Self((!v.is_nan()).then_some(v != 0.0))
    }
    fn from_str(v: &str) -> Self {
        let v = v.trim();
        let word = |w: &str| v.eq_ignore_ascii_case(w);
        Self(if ["1", "true", "yes", "on"].into_iter().any(word) {
            Some(true)
        } else if ["0", "false", "no", "off"].into_iter().any(word) {
            Some(false)
        } else {
            None
        })
    }
}

impl FromScalar for PveInteger {
    const EXPECTING: &'static str = "an integer or a string holding one";
    fn from_bool(v: bool) -> Self {
        Self(Some(i64::from(v)))
    }
    fn from_i64(v: i64) -> Self {
        Self(Some(v))
    }
    fn from_u64(v: u64) -> Self {
        Self(Some(i64::try_from(v).unwrap_or(i64::MAX)))
    }
    fn from_f64(v: f64) -> Self {
        // `as` saturates at the i64 bounds; fractions are cut toward zero.
        Self(v.is_finite().then_some(v as i64))
    }
    fn from_str(v: &str) -> Self {
        let v = v.trim();
        match v.parse::<i64>() {
            Ok(i) => Self(Some(i)),
            Err(_) => Self::from_f64(v.parse::<f64>().unwrap_or(f64::NAN)),
        }
    }
}

impl FromScalar for PveNumber {
    const EXPECTING: &'static str = "a number or a string holding one";
    fn from_bool(v: bool) -> Self {
        Self(Some(f64::from(u8::from(v))))
    }
    fn from_i64(v: i64) -> Self {
        Self(Some(v as f64))
    }
    fn from_u64(v: u64) -> Self {
        Self(Some(v as f64))
    }
    fn from_f64(v: f64) -> Self {
        Self(v.is_finite().then_some(v))
    }
    fn from_str(v: &str) -> Self {
        Self::from_f64(v.trim().parse::<f64>().unwrap_or(f64::NAN))
    }
}

impl FromScalar for PveString {
    const EXPECTING: &'static str = "a string";
    fn from_bool(v: bool) -> Self {
        Self(Some(compact_str::format_compact!("{v}")))
    }
    fn from_i64(v: i64) -> Self {
        Self(Some(compact_str::format_compact!("{v}")))
    }
    fn from_u64(v: u64) -> Self {
        Self(Some(compact_str::format_compact!("{v}")))
    }
    fn from_f64(v: f64) -> Self {
        Self(Some(compact_str::format_compact!("{v}")))
    }
    fn from_str(v: &str) -> Self {
        Self(Some(v.into()))
    }
}

struct ScalarVisitor<T>(PhantomData<T>);

impl<'de, T: FromScalar> Visitor<'de> for ScalarVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
        Ok(T::from_bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        Ok(T::from_i64(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        Ok(T::from_u64(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        Ok(T::from_f64(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        Ok(T::from_str(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_none<E: de::Error>(self) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_any(self)
    }
}

macro_rules! deserialize_scalar {
    ($($ty:ty),*) => {$(
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(ScalarVisitor::<$ty>(PhantomData))
            }
        }
    )*};
}
deserialize_scalar!(PveBoolean, PveInteger, PveNumber, PveString);

#[cfg(test)]
mod tests {
    use super::*;

    fn de<T: for<'de> Deserialize<'de>>(json: &str) -> T {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn booleans() {
        for (json, want) in [
            ("true", Some(true)),
            ("false", Some(false)),
            ("1", Some(true)),
            ("0", Some(false)),
            ("\"1\"", Some(true)),
            ("\"off\"", Some(false)),
            ("\"Yes\"", Some(true)),
            ("\"N/A\"", None),
            ("null", None),
        ] {
            assert_eq!(de::<PveBoolean>(json).known(), want, "{json}");
        }
    }

    #[test]
    fn integers() {
        for (json, want) in [
            ("5400", Some(5400)),
            ("\"5400\"", Some(5400)),
            ("\" 42 \"", Some(42)),
            ("-1", Some(-1)),
            ("1.6367079424e+10", Some(16_367_079_424)),
            ("\"1.6367079424e+10\"", Some(16_367_079_424)),
            ("12.9", Some(12)),
            ("18446744073709551615", Some(i64::MAX)),
            ("\"N/A\"", None),
            ("\"\"", None),
            ("null", None),
            ("true", Some(1)),
        ] {
            assert_eq!(de::<PveInteger>(json).known(), want, "{json}");
        }
    }

    #[test]
    fn numbers() {
        for (json, want) in [
            ("0.25", Some(0.25)),
            ("\"0.25\"", Some(0.25)),
            ("3", Some(3.0)),
            ("\"1.5e3\"", Some(1500.0)),
            ("\"NaN\"", None),
            ("\"inf\"", None),
            ("\"N/A\"", None),
        ] {
            assert_eq!(de::<PveNumber>(json).known(), want, "{json}");
        }
    }

    #[test]
    fn strings() {
        assert_eq!(de::<PveString>("\"pve1\"").known(), Some("pve1"));
        assert_eq!(de::<PveString>("101").known(), Some("101"));
        assert_eq!(de::<PveString>("null").known(), None);
    }

    #[test]
    fn wrong_shapes_are_errors() {
        for json in ["[1]", "{\"a\": 1}"] {
            assert!(serde_json::from_str::<PveInteger>(json).is_err(), "{json}");
            assert!(serde_json::from_str::<PveString>(json).is_err(), "{json}");
        }
    }

    #[test]
    fn options_flatten() {
        let missing: Option<PveInteger> = None;
        let unknown = Some(PveInteger(None));
        assert_eq!(missing.known(), None);
        assert_eq!(unknown.known(), None);
        assert_eq!(Some(PveInteger(Some(3))).known(), Some(3));
    }
}

//! Finds the line and column of a node in a YAML text, given its path.
//!
//! serde_yaml gives no spans to typed values, but it stamps every error raised while a node
//! is being deserialised with that node's position. The locator walks the document with a
//! `DeserializeSeed` that follows a path and fails on purpose at its target; the position of
//! that deliberate failure is the answer. This keeps the catalog types plain derives and
//! works for keys, values, aliases and flow or block style alike.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One step of a path into a YAML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    /// The value of the first mapping entry whose key is this string.
    Key(String),
    /// The key of the mapping entry at this index (a target, not a step).
    KeyAt(usize),
    /// The value of the mapping entry at this index.
    ValueAt(usize),
    /// The sequence item at this index.
    Index(usize),
}

/// The marker message of the deliberate failure; no real error contains it.
const MARKER: &str = "\u{0}modelmux-locate\u{0}";

/// Returns the 1-based (line, column) of the node at `path`, or None if there is none.
pub(crate) fn locate(text: &str, path: &[Seg]) -> Option<(usize, usize)> {
    let document = serde_yaml::Deserializer::from_str(text).next()?;
    match (Walk { path }).deserialize(document) {
        Ok(()) => None,
        Err(err) => {
            if err.to_string().contains(MARKER) {
                err.location().map(|l| (l.line(), l.column()))
            } else {
                None
            }
        }
    }
}

fn hit<E: de::Error>() -> E {
    E::custom(MARKER)
}

/// Walks towards the target; `Ok(())` means the path does not exist.
struct Walk<'p> {
    path: &'p [Seg],
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if self.path.is_empty() {
            deserializer.deserialize_any(Hit)
        } else {
            deserializer.deserialize_any(self)
        }
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (first, rest) = match self.path.split_first() {
            Some(split) => split,
            None => return Err(hit()),
        };
        let mut index = 0;
        loop {
            let key_is_target = matches!(first, Seg::KeyAt(i) if *i == index);
            let key = match map.next_key_seed(KeySeed {
                fail: key_is_target,
            })? {
                Some(key) => key,
                None => return Ok(()),
            };
            let follow = match first {
                Seg::Key(name) => key.as_deref() == Some(name.as_str()),
                Seg::ValueAt(i) => *i == index,
                Seg::KeyAt(_) | Seg::Index(_) => false,
            };
            if follow {
                map.next_value_seed(Walk { path: rest })?;
                // The path went through this entry and did not hit: it does not exist.
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                return Ok(());
            }
            map.next_value::<IgnoredAny>()?;
            index += 1;
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let (first, rest) = match self.path.split_first() {
            Some(split) => split,
            None => return Err(hit()),
        };
        let mut index = 0;
        loop {
            if matches!(first, Seg::Index(i) if *i == index) {
                if seq.next_element_seed(Walk { path: rest })?.is_none() {
                    return Ok(());
                }
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                return Ok(());
            }
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    // Scalars have no children, so a path that still has steps does not exist.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        Ok(())
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // A tagged node (`!tag value`): the path cannot go inside it, so consume and miss.
        let (IgnoredAny, variant) = data.variant::<IgnoredAny>()?;
        de::VariantAccess::newtype_variant::<IgnoredAny>(variant)?;
        Ok(())
    }
}

/// Deserialises a mapping key as a string when it is one, failing when it is the target.
struct KeySeed {
    fail: bool,
}

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Option<String>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        if self.fail {
            deserializer.deserialize_any(Hit).map(|()| None)
        } else {
            deserializer.deserialize_any(KeyVisitor)
        }
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

/// Fails at whatever node it is given, so serde_yaml stamps that node's position.
struct Hit;

impl<'de> Visitor<'de> for Hit {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the target node")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(hit())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(hit())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(hit())
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        Err(hit())
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        Err(hit())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(hit())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(hit())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(hit())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(hit())
    }
    fn visit_some<D: de::Deserializer<'de>>(self, _: D) -> Result<(), D::Error> {
        Err(hit())
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(hit())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(hit())
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(hit())
    }
}

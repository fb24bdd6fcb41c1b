//! MinIO's serialisable helper types (spec §2.6) with their exact msgp encodings.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bytes::BytesMut;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Payload;
use crate::error::Error;

/// A string map (Go's `grid.MSS`, `map[string]string`). A nil map encodes as msgpack nil
/// and stays nil through a round trip; an empty map encodes as an empty map. Keys are kept
/// sorted, so the encoding of a map is deterministic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mss(Option<BTreeMap<String, String>>);

impl Mss {
    /// An empty (non-nil) map.
    pub fn new() -> Self {
        Mss(Some(BTreeMap::new()))
    }

    /// The nil map.
    pub const fn nil() -> Self {
        Mss(None)
    }

    /// Whether this is the nil map.
    pub fn is_nil(&self) -> bool {
        self.0.is_none()
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.as_ref()?.get(key).map(String::as_str)
    }

    /// Sets `key` to `value` (a nil map becomes a map).
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0
            .get_or_insert_with(BTreeMap::new)
            .insert(key.into(), value.into());
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, BTreeMap::len)
    }

    /// Whether there are no entries (true for the nil map).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The entries as a URL query like MinIO's `ToQuery`: `""` when empty, otherwise `?`
    /// followed by `key=value` pairs in key order, query-escaped and joined by `&`.
    pub fn to_query(&self) -> String {
        let mut out = String::new();
        for (i, (k, v)) in self.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            query_escape(k, &mut out);
            out.push('=');
            query_escape(v, &mut out);
        }
        out
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Mss {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Mss(Some(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        ))
    }
}

impl Serialize for Mss {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Mss {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Option::<BTreeMap<String, String>>::deserialize(d).map(Mss)
    }
}

/// Go's `url.QueryEscape`: unreserved bytes stay, space becomes `+`, the rest `%XX`.
fn query_escape(s: &str, out: &mut String) {
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
}

/// A byte slice (Go's `grid.NilBytes`): msgpack `bin`, or msgpack nil for the nil slice. An
/// empty slice is not nil.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NilBytes(pub Option<bytes::Bytes>);

impl NilBytes {
    /// NilBytes holding `data`.
    pub fn new(data: impl Into<bytes::Bytes>) -> Self {
        NilBytes(Some(data.into()))
    }

    /// The nil slice.
    pub const fn nil() -> Self {
        NilBytes(None)
    }

    /// Whether this is the nil slice.
    pub fn is_nil(&self) -> bool {
        self.0.is_none()
    }

    /// The bytes (empty for nil).
    pub fn as_slice(&self) -> &[u8] {
        self.0.as_deref().unwrap_or_default()
    }
}

impl Serialize for NilBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            None => s.serialize_none(),
            Some(b) => s.serialize_bytes(b),
        }
    }
}

impl<'de> Deserialize<'de> for NilBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let b = Option::<serde_bytes::ByteBuf>::deserialize(d)?;
        Ok(NilBytes(b.map(|b| bytes::Bytes::from(b.into_vec()))))
    }
}

/// Query values (Go's `grid.URLValues`, `map[string][]string`): a map of string to array
/// of strings. It has no nil state: MinIO encodes a nil map as an empty map, and a msgpack
/// nil decodes as empty here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UrlValues(pub BTreeMap<String, Vec<String>>);

impl UrlValues {
    /// Appends `value` to the values of `key`.
    pub fn add(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.entry(key.into()).or_default().push(value.into());
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key)?.first().map(String::as_str)
    }
}

impl Serialize for UrlValues {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for UrlValues {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Option::<BTreeMap<String, Vec<String>>>::deserialize(d)
            .map(|m| UrlValues(m.unwrap_or_default()))
    }
}

/// A value carried as JSON text inside a msgpack `bin` (Go's `grid.JSON[T]`); `None`
/// encodes as msgpack nil.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Json<T>(pub Option<T>);

impl<T: Serialize> Serialize for Json<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            None => s.serialize_none(),
            Some(v) => {
                let text = serde_json::to_vec(v).map_err(serde::ser::Error::custom)?;
                s.serialize_bytes(&text)
            }
        }
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Json<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Option::<serde_bytes::ByteBuf>::deserialize(d)? {
            None => Ok(Json(None)),
            Some(text) => serde_json::from_slice(&text)
                .map(|v| Json(Some(v)))
                .map_err(serde::de::Error::custom),
        }
    }
}

/// No payload at all (Go's `grid.NoPayload`): encodes to zero bytes, and decodes from
/// anything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoPayload;

impl Payload for NoPayload {
    fn encode_to(&self, _: &mut BytesMut) -> Result<(), Error> {
        Ok(())
    }

    fn decode_from(_: &[u8], _: usize) -> Result<Self, Error> {
        Ok(NoPayload)
    }
}

/// An array of values (Go's `grid.Array[T]`): msgpack array of the elements' encodings, or
/// msgpack nil when nil.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Array<T>(pub Option<Vec<T>>);

impl<T> Default for Array<T> {
    fn default() -> Self {
        Array(None)
    }
}

impl<T> Array<T> {
    /// The elements (empty for nil).
    pub fn as_slice(&self) -> &[T] {
        self.0.as_deref().unwrap_or_default()
    }

    /// Appends an element (a nil array becomes an array).
    pub fn push(&mut self, v: T) {
        self.0.get_or_insert_with(Vec::new).push(v);
    }
}

impl<T: Serialize> Serialize for Array<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Array<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Option::<Vec<T>>::deserialize(d).map(Array)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::typed::{decode, encode};

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// Encodes, checks the bytes, decodes and checks the value.
    fn golden<T: Payload + PartialEq + std::fmt::Debug>(v: T, want_hex: &str) {
        let bytes = encode(&v).unwrap();
        assert_eq!(hex(&bytes), want_hex, "{v:?}");
        assert_eq!(decode::<T>(&bytes).unwrap(), v);
    }

    #[test]
    fn mss_encodings() {
        // TestMarshalUnmarshalMSS: fixmap 2, fixstr keys and values.
        let m: Mss = [("abc", "def"), ("ghi", "jkl")].into_iter().collect();
        golden(m, "82a3616263a3646566a3676869a36a6b6c");
        // TestMarshalUnmarshalMSSNil: nil is msgpack nil and decodes to nil.
        golden(Mss::nil(), "c0");
        assert!(decode::<Mss>(&[0xc0]).unwrap().is_nil());
        golden(Mss::new(), "80");
    }

    #[test]
    fn mss_to_query() {
        assert_eq!(Mss::nil().to_query(), "");
        let m: Mss = [("b", "x y"), ("a", "1&2=3/é")].into_iter().collect();
        assert_eq!(m.to_query(), "?a=1%262%3D3%2F%C3%A9&b=x+y");
    }

    #[test]
    fn bytes_encodings() {
        // TestMarshalUnmarshalBytes / BytesNil.
        golden(
            NilBytes::new(&b"abc123123123"[..]),
            "c40c616263313233313233313233",
        );
        golden(NilBytes::nil(), "c0");
        golden(NilBytes::new(&b""[..]), "c400");
    }

    #[test]
    fn url_values_encodings() {
        let mut v = UrlValues::default();
        v.add("a", "1");
        v.add("a", "2");
        golden(v, "81a16192a131a132");
        golden(UrlValues::default(), "80");
        assert_eq!(decode::<UrlValues>(&[0xc0]).unwrap(), UrlValues::default());
    }

    #[test]
    fn json_encodings() {
        golden(Json(Some(vec![1, 2])), &format!("c405{}", hex(b"[1,2]")));
        golden(Json::<u8>(None), "c0");
    }

    #[test]
    fn no_payload_is_zero_bytes() {
        assert!(encode(&NoPayload).unwrap().is_empty());
        assert_eq!(decode::<NoPayload>(b"anything").unwrap(), NoPayload);
    }

    #[test]
    fn array_encodings() {
        golden(Array(Some(vec![Mss::nil(), Mss::new()])), "92c080");
        golden(Array::<u8>(None), "c0");
    }
}

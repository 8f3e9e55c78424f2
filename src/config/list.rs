//! List-valued keys (`allowed_origins`, `trusted_proxies`, ...) accept a
//! TOML array or one comma-separated string. The string form is what an
//! environment variable can carry:
//! `SOCKJS_GATEWAY__SERVICES__ECHO__ALLOWED_ORIGINS=https://a.example,https://b.example`.
//!
//! This is a serde helper rather than the `config` crate's
//! `with_list_parse_key`, which needs every key spelled out in advance,
//! while service names (`services.NAME.allowed_origins`) are the user's.

use serde::de::{DeserializeOwned, Error, IntoDeserializer, SeqAccess, Visitor};
use serde::Deserializer;
use std::fmt;
use std::marker::PhantomData;

/// `deserialize_with` for a `Vec<T>` that may also be given as `"a,b,c"`.
/// Items are trimmed; empty items are skipped, so `""` is the empty list.
pub fn deserialize<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    d.deserialize_any(ListVisitor(PhantomData))
}

struct ListVisitor<T>(PhantomData<T>);

impl<'de, T: DeserializeOwned> Visitor<'de> for ListVisitor<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list, or a comma-separated string")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = seq.next_element()? {
            out.push(item);
        }
        Ok(out)
    }

    fn visit_str<E: Error>(self, s: &str) -> Result<Vec<T>, E> {
        s.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                T::deserialize(item.into_deserializer())
                    .map_err(|e: serde::de::value::Error| E::custom(format!("{item:?}: {e}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    struct Holder {
        #[serde(deserialize_with = "super::deserialize")]
        names: Vec<String>,
        #[serde(default, deserialize_with = "super::deserialize")]
        nets: Vec<ipnet::IpNet>,
    }

    fn parse(json: &str) -> Result<Holder, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn arrays_and_comma_strings_give_the_same_list() {
        let a = parse(r#"{"names": ["https://a.example", "https://b.example"]}"#).unwrap();
        let b = parse(r#"{"names": "https://a.example, https://b.example"}"#).unwrap();
        assert_eq!(a.names, b.names);
        assert_eq!(a.names, ["https://a.example", "https://b.example"]);
    }

    #[test]
    fn one_item_and_empty_strings() {
        assert_eq!(parse(r#"{"names": "*"}"#).unwrap().names, ["*"]);
        assert!(parse(r#"{"names": ""}"#).unwrap().names.is_empty());
        assert!(parse(r#"{"names": " , "}"#).unwrap().names.is_empty());
    }

    #[test]
    fn items_are_parsed_as_their_type() {
        let h = parse(r#"{"names": [], "nets": "10.0.0.0/8,::1/128"}"#).unwrap();
        assert_eq!(h.nets.len(), 2);
        let e = parse(r#"{"names": [], "nets": "10.0.0.0/8,not-a-net"}"#).unwrap_err();
        assert!(e.contains("not-a-net"), "{e}");
        let e = parse(r#"{"names": 5}"#).unwrap_err();
        assert!(e.contains("comma-separated"), "{e}");
    }
}

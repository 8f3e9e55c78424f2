//! What each node holds, so that any node can answer for the whole cluster.
//!
//! Two parts, so that what clients choose to subscribe to never makes the
//! part every node reads every second grow:
//! - [`Presence`]: which nodes are alive, where they are reached and how
//!   many sessions each service has; small, written whole every
//!   `presence_interval` and read by every other node.
//! - [`Counts`]: subscribers by destination and signed-in sessions by user,
//!   kept in a Redis hash per node and written as changes only ([`diff`]);
//!   another node reads one field of it when the API asks ([`field`]), or
//!   scans it for `/api/destinations`.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Presence {
    pub node: String,
    /// Where other nodes forward requests for this node's sessions.
    pub advertise: Option<String>,
    pub services: BTreeMap<String, ServicePresence>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServicePresence {
    pub sessions: usize,
}

/// A node's counts by [`field`].
pub type Counts = HashMap<String, usize>;

/// What a count is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Subscribers of a destination, a user's queue shown as
    /// `/user/{name}/queue/...`.
    Destination,
    /// Signed-in sessions of a user.
    User,
}

impl Counted {
    fn tag(self) -> char {
        match self {
            Counted::Destination => 'd',
            Counted::User => 'u',
        }
    }
}

/// The hash field of a count: service, kind and name joined by NUL, which
/// none of them may hold (service names are config keys, destinations are
/// plain paths, user names hold no control character).
pub fn field(service: &str, counted: Counted, name: &str) -> String {
    format!("{service}\0{}\0{name}", counted.tag())
}

/// The name in a field of `service` and `counted`, if it is one.
pub fn name_in<'a>(field: &'a str, service: &str, counted: Counted) -> Option<&'a str> {
    let rest = field.strip_prefix(service)?.strip_prefix('\0')?;
    let rest = rest.strip_prefix(counted.tag())?.strip_prefix('\0')?;
    Some(rest)
}

/// What to write so that a hash holding `before` holds `now`: the fields
/// to set, and the fields to delete (counts that went to zero).
pub fn diff(before: &Counts, now: &Counts) -> (Vec<(String, usize)>, Vec<String>) {
    let set = now
        .iter()
        .filter(|(f, n)| before.get(*f) != Some(n))
        .map(|(f, n)| (f.clone(), *n))
        .collect();
    let gone = before
        .keys()
        .filter(|f| !now.contains_key(*f))
        .cloned()
        .collect();
    (set, gone)
}

/// `s` with Redis glob characters escaped, for a `MATCH` pattern.
pub fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_name_their_service_and_kind() {
        let f = field("stomp", Counted::Destination, "/topic/a");
        assert_eq!(name_in(&f, "stomp", Counted::Destination), Some("/topic/a"));
        assert_eq!(name_in(&f, "stomp", Counted::User), None);
        assert_eq!(name_in(&f, "sto", Counted::Destination), None);
        assert_eq!(name_in(&f, "stomp2", Counted::Destination), None);
    }

    #[test]
    fn a_diff_writes_only_what_changed() {
        let before: Counts = [("a".into(), 1), ("b".into(), 2), ("c".into(), 3)].into();
        let now: Counts = [("a".into(), 1), ("b".into(), 5), ("d".into(), 1)].into();
        let (mut set, gone) = diff(&before, &now);
        set.sort();
        assert_eq!(set, vec![("b".into(), 5), ("d".into(), 1)]);
        assert_eq!(gone, vec!["c".to_owned()]);
        assert_eq!(diff(&now, &now), (vec![], vec![]));
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("/t/a*b?[c]\\"), "/t/a\\*b\\?\\[c\\]\\\\");
    }
}

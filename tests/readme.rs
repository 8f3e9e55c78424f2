//! The documentation against the code: the README's and the library page's
//! Rust example is `examples/shout.rs` (which cargo builds with the tests),
//! the configuration reference lists exactly the keys the code accepts with
//! the code's defaults, and every relative link resolves.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[test]
fn the_rust_examples_are_the_compiled_example() {
    let example: String = include_str!("../examples/shout.rs")
        .lines()
        .filter(|l| !l.starts_with("//!"))
        .map(|l| format!("{l}\n"))
        .collect();
    for (name, text) in [
        ("README.md", include_str!("../README.md")),
        ("docs/library.md", include_str!("../docs/library.md")),
    ] {
        let start = text.find("```rust\n").expect("a Rust example") + 8;
        let len = text[start..].find("```").expect("closed code block");
        assert_eq!(&text[start..start + len], example, "{name}");
    }
}

/// Every key the configuration accepts, with its default: a configuration
/// with every optional section present, serialized and flattened to dotted
/// keys (a service's as `services.NAME.key`).
fn keys_in_the_code() -> BTreeMap<String, Value> {
    let config = sockjs_gateway::Config::from_toml(
        "[services.x]\nprefix = \"/x\"\n\
         [cluster]\nredis_url = \"redis://127.0.0.1:6379/0\"\n\
         secret = \"a-secret-of-at-least-32-characters\"\n",
    )
    .unwrap();
    // A table of an array (`[[services.NAME.history]]`), with only what it
    // requires.
    let history: sockjs_gateway::config::HistoryConfig =
        serde_json::from_value(serde_json::json!({ "destinations": [] })).unwrap();
    let mut keys = BTreeMap::new();
    for (k, v) in serde_json::to_value(&history).unwrap().as_object().unwrap() {
        let v = if k == "destinations" {
            Value::Null
        } else {
            v.clone()
        };
        keys.insert(format!("services.NAME.history.{k}"), v);
    }
    let Value::Object(top) = serde_json::to_value(&config).unwrap() else {
        panic!("a table");
    };
    for (key, value) in top {
        match (key.as_str(), value) {
            ("services", Value::Object(services)) => {
                for (k, v) in services["x"].as_object().unwrap() {
                    keys.insert(format!("services.NAME.{k}"), v.clone());
                }
            }
            (section, Value::Object(table)) => {
                for (k, v) in table {
                    keys.insert(format!("{section}.{k}"), v);
                }
            }
            (key, value) => {
                keys.insert(key.to_owned(), value);
            }
        }
    }
    keys
}

/// The reference's rows: dotted key -> the default column's text.
fn keys_in_the_reference() -> BTreeMap<String, String> {
    let text = include_str!("../docs/configuration.md");
    let mut section: Option<String> = None;
    let mut keys = BTreeMap::new();
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            section = if heading == "Top level" {
                Some(String::new())
            } else if let Some(h) = heading.strip_prefix("`[[") {
                h.strip_suffix("]]`").map(|s| format!("{s}."))
            } else {
                heading
                    .strip_prefix("`[")
                    .and_then(|h| h.strip_suffix("]`"))
                    .map(|s| format!("{s}."))
            };
            continue;
        }
        let (Some(section), Some(row)) = (&section, line.strip_prefix("| `")) else {
            continue;
        };
        let cells: Vec<&str> = row.split(" | ").collect();
        let key = cells[0].trim_end_matches('`');
        let previous = keys.insert(format!("{section}{key}"), cells[2].trim().to_owned());
        assert!(previous.is_none(), "{section}{key} is documented twice");
    }
    keys
}

/// A value as the reference writes it: numbers without a needless `.0`,
/// strings bare, lists as compact JSON.
fn shown(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(match n.as_f64() {
            Some(f) if f.fract() == 0.0 && n.is_f64() => format!("{}", f as i64),
            _ => n.to_string(),
        }),
        other => Some(other.to_string()),
    }
}

#[test]
fn the_configuration_reference_matches_the_code() {
    let code = keys_in_the_code();
    let docs = keys_in_the_reference();
    let in_code: BTreeSet<&String> = code.keys().collect();
    let in_docs: BTreeSet<&String> = docs.keys().collect();
    let missing: Vec<_> = in_code.difference(&in_docs).collect();
    let unknown: Vec<_> = in_docs.difference(&in_code).collect();
    assert!(
        missing.is_empty(),
        "keys the code accepts that docs/configuration.md lacks: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "keys in docs/configuration.md that the code does not accept: {unknown:?}"
    );
    for (key, documented) in &docs {
        let value = &code[key];
        // A default in `code` is the literal value; any other text
        // describes one the code leaves unset (derived at start, or none),
        // unless the key is required.
        let literal = documented
            .strip_prefix('`')
            .and_then(|d| d.strip_suffix('`'))
            .filter(|d| !d.contains('`'));
        match literal {
            Some(literal) => assert_eq!(
                Some(literal.to_owned()),
                shown(value),
                "{key}: documented default {documented}, the code's is {value}"
            ),
            None if documented == "required" => {}
            None => assert!(
                value.is_null(),
                "{key}: documented as {documented:?}, but the code's default is {value}"
            ),
        }
    }
}

/// GitHub's anchor for a heading: lower case, spaces to `-`, and nothing
/// but letters, digits, `-` and `_` kept.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut found = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        if !in_code && line.starts_with('#') {
            found.insert(anchor(line.trim_start_matches('#')));
        }
    }
    found
}

#[test]
fn every_relative_link_resolves() {
    let mut pages: Vec<PathBuf> = vec![PathBuf::from("README.md")];
    for entry in std::fs::read_dir("docs").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    assert!(pages.len() > 10, "docs/ holds its pages");
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            let Some(end) = rest.find(')') else { break };
            let target = &rest[..end];
            if target.contains("://") || target.starts_with("mailto:") || target.contains(' ') {
                continue;
            }
            checked += 1;
            let (file, fragment) = target.split_once('#').unwrap_or((target, ""));
            let resolved = if file.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap_or(Path::new("")).join(file)
            };
            if !resolved.exists() {
                broken.push(format!("{}: {target} (no such file)", page.display()));
                continue;
            }
            if !fragment.is_empty() && resolved.extension().is_some_and(|e| e == "md") {
                let heads = anchors(&std::fs::read_to_string(&resolved).unwrap());
                if !heads.contains(fragment) {
                    broken.push(format!("{}: {target} (no such heading)", page.display()));
                }
            }
        }
    }
    assert!(checked > 50, "only {checked} links found");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

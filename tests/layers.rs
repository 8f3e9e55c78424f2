//! The layers of `src/lib.rs`'s Layout section, read off the source: no
//! module uses a module of a higher layer, and no two files import each
//! other, directly or round a longer circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module's layer, lowest first, as the Layout lists them.
const LAYERS: &[(&str, u8)] = &[
    ("protocol", 0),
    ("limits", 0),
    ("metrics", 0),
    ("config", 1),
    ("session", 2),
    ("cluster", 3),
    ("service", 4),
    ("transport", 5),
    ("api", 6),
    ("server", 7),
];

/// Every `.rs` file under `dir`, as (path, its module path from `src`).
fn sources(dir: &Path, module: &[String], out: &mut Vec<(String, Vec<String>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            let mut m = module.to_vec();
            m.push(name);
            sources(&path, &m, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let mut m = module.to_vec();
            if name != "mod" {
                m.push(name);
            }
            out.push((path.display().to_string(), m));
        }
    }
}

/// The `crate::a::b` paths that `text` uses, outside comments, as
/// (a, b) with b possibly empty.
fn uses(text: &str) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + 7..];
            let path: Vec<&str> = rest
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or("")
                .split("::")
                .collect();
            let top = path[0].to_owned();
            let sub = path.get(1).copied().unwrap_or("").to_owned();
            if !top.is_empty() {
                found.insert((top, sub));
            }
        }
        // `use crate::a::{b, c}` names several modules of `a`.
        if let Some(i) = code.find("use crate::") {
            let after = &code[i + 11..];
            if let Some((top, list)) = after.split_once("::{") {
                for sub in list.split(['}', ',']) {
                    let sub = sub.trim().split("::").next().unwrap_or("").trim();
                    if !sub.is_empty() && !top.contains("::") {
                        found.insert((top.to_owned(), sub.to_owned()));
                    }
                }
            }
        }
    }
    found
}

#[test]
fn no_module_uses_a_higher_layer() {
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let mut files = Vec::new();
    sources(Path::new("src"), &[], &mut files);
    let mut wrong = Vec::new();
    for (path, module) in &files {
        let Some(own) = module.first().and_then(|m| layer.get(m.as_str())) else {
            continue;
        };
        for (top, _) in uses(&std::fs::read_to_string(path).unwrap()) {
            if top == module[0] {
                continue;
            }
            if let Some(other) = layer.get(top.as_str()) {
                if other >= own {
                    wrong.push(format!("{path} uses crate::{top}"));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

/// Modules whose files form one unit: the session actor and the handler
/// seam are two sides of one context (a handler's `SessionCtx` is the
/// actor's), so their files use each other by design.
const UNITS: &[&str] = &["session"];

#[test]
fn no_two_files_import_each_other() {
    let mut files = Vec::new();
    sources(Path::new("src"), &[], &mut files);
    for (_, module) in files.iter_mut() {
        if UNITS.contains(&module[0].as_str()) {
            module.truncate(1);
        }
    }
    let known: BTreeSet<Vec<String>> = files.iter().map(|(_, m)| m.clone()).collect();
    // Edges between files, by module path: `crate::a::b` is file a/b.rs
    // when there is one, else a/mod.rs.
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (path, module) in &files {
        for (top, sub) in uses(&std::fs::read_to_string(path).unwrap()) {
            let file = vec![top.clone(), sub];
            let target = if UNITS.contains(&top.as_str()) {
                vec![top]
            } else if known.contains(&file) {
                file
            } else {
                vec![top]
            };
            if &target != module && known.contains(&target) {
                edges.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    // Depth-first search for a circle.
    fn visit(
        node: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        path: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
    ) -> Option<Vec<Vec<String>>> {
        if let Some(i) = path.iter().position(|n| n == node) {
            let mut circle = path[i..].to_vec();
            circle.push(node.clone());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.clone());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(circle) = visit(node, &edges, &mut Vec::new(), &mut done) {
            let shown: Vec<String> = circle.iter().map(|m| m.join("::")).collect();
            panic!("an import circle: {}", shown.join(" -> "));
        }
    }
}

//! Environment variables that look meant for the gateway but are not read.
//!
//! The `config` crate ignores every variable without the exact
//! `SOCKJS_GATEWAY__` prefix, so `SOCKJS_GATEWAY_LISTEN` (one underscore
//! short) would be dropped without a word.

use super::ENV_PREFIX;

/// The names among `names` that start like a gateway variable but lack the
/// `SOCKJS_GATEWAY__` separator. Only names are looked at: values may be
/// secrets and are never logged.
pub fn misspelled<I, S>(names: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let stem = ENV_PREFIX.to_ascii_lowercase();
    let full = format!("{stem}__");
    names
        .into_iter()
        .map(|n| n.as_ref().to_owned())
        .filter(|n| {
            let lower = n.to_ascii_lowercase();
            lower.starts_with(&stem) && !lower.starts_with(&full)
        })
        .collect()
}

/// What to tell the user about a misspelled variable.
pub fn warning(name: &str) -> String {
    let rest = name[ENV_PREFIX.len()..].trim_start_matches('_');
    format!(
        "environment variable {name} is ignored: gateway variables start with \
         {ENV_PREFIX}__ (two underscores), e.g. {ENV_PREFIX}__{}",
        if rest.is_empty() { "LISTEN" } else { rest }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_are_found_and_real_ones_are_not() {
        let found = misspelled([
            "SOCKJS_GATEWAY_LISTEN",
            "SOCKJS_GATEWAY__LISTEN",
            "sockjs_gateway__listen",
            "SOCKJS_GATEWAYLISTEN",
            "SOCKJS_GATEWAY",
            "PATH",
            "GATEWAY_BIN",
        ]);
        assert_eq!(
            found,
            [
                "SOCKJS_GATEWAY_LISTEN",
                "SOCKJS_GATEWAYLISTEN",
                "SOCKJS_GATEWAY"
            ]
        );
    }

    #[test]
    fn the_warning_names_the_right_spelling() {
        assert!(warning("SOCKJS_GATEWAY_LISTEN").ends_with("e.g. SOCKJS_GATEWAY__LISTEN"));
        assert!(warning("SOCKJS_GATEWAY").ends_with("e.g. SOCKJS_GATEWAY__LISTEN"));
    }
}

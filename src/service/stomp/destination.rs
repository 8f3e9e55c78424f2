//! Destination patterns, as pure functions: the `subscribe` and `send`
//! lists of a `stomp` service, in Spring's (Ant-style) syntax. `*` matches
//! within one path segment, `**` any number of whole segments:
//! `/topic/**` matches `/topic/a` and `/topic/a/b`, `/topic/*` only the
//! first, `/topic/news.*` matches `/topic/news.sport`.

/// Why a pattern is refused at start.
pub fn check(pattern: &str) -> Result<(), String> {
    if !pattern.starts_with('/') {
        return Err(format!("{pattern:?}: a destination pattern starts with /"));
    }
    for seg in pattern.split('/').skip(1) {
        if seg.contains("**") && seg != "**" {
            return Err(format!(
                "{pattern:?}: ** must be a whole path segment (as in /topic/**)"
            ));
        }
    }
    Ok(())
}

/// Whether `destination` is a plain path: it starts with `/` and holds
/// nothing that a header line would escape or end on, as it is copied
/// into MESSAGE frames unescaped.
pub fn is_plain(destination: &str) -> bool {
    destination.starts_with('/') && !destination.contains(['\n', '\r', ':', '\\', '\0'])
}

/// Whether `destination` matches `pattern`.
pub fn matches(pattern: &str, destination: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('/').collect();
    let destination: Vec<&str> = destination.split('/').collect();
    segments(&pattern, &destination)
}

/// Whether any of `patterns` matches.
pub fn any_matches(patterns: &[String], destination: &str) -> bool {
    patterns.iter().any(|p| matches(p, destination))
}

fn segments(pattern: &[&str], destination: &[&str]) -> bool {
    match pattern.split_first() {
        None => destination.is_empty(),
        Some((&"**", rest)) => {
            // Zero or more whole segments.
            (0..=destination.len()).any(|skip| segments(rest, &destination[skip..]))
        }
        Some((p, rest)) => match destination.split_first() {
            Some((d, drest)) => segment(p, d) && segments(rest, drest),
            None => false,
        },
    }
}

/// One segment against a pattern segment with `*` wildcards.
fn segment(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !s.starts_with(first) || s.len() < first.len() + last.len() || !s.ends_with(last) {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_star_spans_segments() {
        assert!(matches("/topic/**", "/topic/a"));
        assert!(matches("/topic/**", "/topic/a/b/c"));
        assert!(matches("/topic/**", "/topic"));
        assert!(!matches("/topic/**", "/topics/a"));
        assert!(!matches("/topic/**", "/queue/a"));
        assert!(matches("/a/**/z", "/a/z"));
        assert!(matches("/a/**/z", "/a/b/c/z"));
        assert!(!matches("/a/**/z", "/a/b/c"));
    }

    #[test]
    fn star_stays_in_its_segment() {
        assert!(matches("/topic/*", "/topic/a"));
        assert!(!matches("/topic/*", "/topic/a/b"));
        assert!(matches("/topic/news.*", "/topic/news.sport"));
        assert!(!matches("/topic/news.*", "/topic/weather.sport"));
        assert!(matches("/t/*x*y", "/t/axbxy"));
        assert!(!matches("/t/a*a", "/t/a"));
        assert!(matches("/exact", "/exact"));
        assert!(!matches("/exact", "/exact/more"));
    }

    #[test]
    fn patterns_are_checked() {
        assert!(check("/topic/**").is_ok());
        assert!(check("topic/**").is_err());
        assert!(check("/topic/a**").is_err());
    }
}

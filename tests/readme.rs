//! The README's Rust example is `examples/shout.rs`, which cargo builds with
//! the tests, so the README cannot drift into code that does not compile.

#[test]
fn readme_example_is_the_compiled_example() {
    let readme = include_str!("../README.md");
    let example = include_str!("../examples/shout.rs");
    let start = readme.find("```rust\n").expect("README has a Rust example") + 8;
    let len = readme[start..].find("```").expect("closed code block");
    let code: String = example
        .lines()
        .filter(|l| !l.starts_with("//!"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(&readme[start..start + len], code);
}

/// The configuration table's defaults are the library's, for the keys whose
/// default a reader could not otherwise check.
#[test]
fn readme_defaults_match_the_code() {
    let readme = include_str!("../README.md");
    let default_of = |key: &str| -> String {
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{key}` |")))
            .unwrap_or_else(|| panic!("README has no row for {key}"));
        row.split('|')
            .nth(2)
            .unwrap()
            .trim()
            .trim_matches('`')
            .to_owned()
    };
    let svc = sockjs_gateway::ServiceConfig::new("/x");
    assert_eq!(svc.sockjs_url, None);
    assert_eq!(
        default_of("sockjs_url").replace("PREFIX", "/x"),
        svc.sockjs_url()
    );
    assert_eq!(
        default_of("heartbeat_delay"),
        svc.heartbeat_delay.to_string()
    );
    assert_eq!(
        default_of("disconnect_delay"),
        svc.disconnect_delay.to_string()
    );
    assert_eq!(default_of("response_limit"), svc.response_limit.to_string());
    // Derived from the open-file limit at start, not a constant.
    assert_eq!(svc.max_sessions, None);
    assert_eq!(default_of("max_sessions"), "derived");
    let top = sockjs_gateway::Config::from_toml("[services.x]\nprefix = \"/x\"\n").unwrap();
    assert_eq!(top.max_connections, None);
    assert_eq!(default_of("max_connections"), "derived");
    assert_eq!(
        default_of("max_header_bytes"),
        top.max_header_bytes.to_string()
    );
    assert_eq!(default_of("write_timeout"), top.write_timeout.to_string());
    assert_eq!(
        default_of("upstream_connect_timeout"),
        svc.upstream_connect_timeout.to_string()
    );
}

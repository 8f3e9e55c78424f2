//! The binary's command line and environment: exit codes, help, list
//! values and near-miss variables.
mod common;
use common::*;
use std::io::Read;
use std::process::{Command, Stdio};

fn gateway() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sockjs-gateway"));
    c.env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Runs a gateway that must refuse to start; returns (exit code, stderr).
fn refused(cmd: &mut Command) -> (Option<i32>, String) {
    let out = cmd.output().expect("binary runs");
    assert!(!out.status.success(), "started: {out:?}");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn config_file(toml: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    std::fs::write(&path, toml).unwrap();
    (dir, path.to_str().unwrap().to_owned())
}

#[test]
fn a_bad_listen_address_exits_2_from_the_flag_and_from_the_environment() {
    let (code, err) = refused(gateway().args(["--listen", "nonsense"]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("listen"), "{err}");
    let (code, err) = refused(gateway().env("SOCKJS_GATEWAY__LISTEN", "nonsense"));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("listen"), "{err}");
}

#[test]
fn help_explains_the_environment_and_logging() {
    let out = gateway().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "SOCKJS_GATEWAY__LISTEN",
        "SOCKJS_GATEWAY__SERVICES__ECHO__HEARTBEAT_DELAY",
        "comma-separated",
        "RUST_LOG",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}

#[test]
fn an_unknown_kind_lists_the_valid_kinds() {
    let (_dir, path) = config_file("[services.x]\nprefix = \"/x\"\nkind = \"chat\"\n");
    let (code, err) = refused(gateway().args(["--config", &path]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("services.x.kind"), "{err}");
    assert!(
        err.contains("echo, close, amplify, broadcast, proxy, stomp"),
        "{err}"
    );
    assert!(!err.contains("variant constructor"), "{err}");
}

#[test]
fn unroutable_prefixes_stop_the_gateway() {
    for toml in [
        "[services.root]\nprefix = \"/\"\n",
        "[services.sp]\nprefix = \"/my echo\"\n",
        "[services.q]\nprefix = \"/echo?x\"\n",
        "[services.a]\nprefix = \"/a\"\n[services.b]\nprefix = \"/a/b\"\n",
    ] {
        let (_dir, path) = config_file(toml);
        let (code, err) = refused(gateway().args(["--config", &path]));
        assert_eq!(code, Some(2), "{toml}: {err}");
        assert!(err.contains(".prefix"), "{toml}: {err}");
    }
}

#[test]
fn a_near_miss_variable_is_warned_about_without_its_value() {
    let mut child = gateway()
        .args(["--listen", "127.0.0.1:0"])
        .env("SOCKJS_GATEWAY_LISTEN", "0.0.0.0:1234-secret")
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.contains("listening on http://127.0.0.1:"), "{line}");
    child.kill().unwrap();
    child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        err.contains("SOCKJS_GATEWAY_LISTEN is ignored") && err.contains("SOCKJS_GATEWAY__LISTEN"),
        "{err}"
    );
    assert!(!err.contains("1234-secret"), "a value was logged: {err}");
}

#[actix_rt::test]
async fn list_keys_can_be_set_from_the_environment() {
    let gw = Gateway::start_with_env(
        &echo_config(""),
        &[(
            "SOCKJS_GATEWAY__SERVICES__ECHO__ALLOWED_ORIGINS",
            "http://a.example, http://b.example",
        )],
    );
    for origin in ["http://a.example", "http://b.example"] {
        let r = request("GET", &gw.url("/echo/info"), &[("Origin", origin)], "").await;
        assert_eq!(r.status, 200, "{origin}");
        assert_eq!(r.header("access-control-allow-origin"), Some(origin));
    }
    let r = request(
        "GET",
        &gw.url("/echo/info"),
        &[("Origin", "http://c.example")],
        "",
    )
    .await;
    assert_eq!(r.status, 403);
}

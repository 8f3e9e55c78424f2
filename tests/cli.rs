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
    // The embedded config's API listens on 8081: a test must not need the
    // demo's ports, which the README's first command holds.
    let mut child = gateway()
        .args(["--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0"])
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

/// Whoever started the gateway may stop reading what it prints (a script
/// that took the port, `| head -1`): its start-up lines then go nowhere,
/// and it serves on. Here its stdout is a pipe nobody reads from at all.
#[actix_rt::test]
async fn a_closed_stdout_does_not_stop_the_gateway() {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe fills the two descriptors it is given.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors are ours; the read end is closed at once.
    let (read, write) = unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    };
    drop(read);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(
        &path,
        "[api]\nlisten = \"127.0.0.1:0\"\ndemo_key = true\n[services.echo]\nprefix = \"/echo\"\n",
    )
    .unwrap();
    let addr = dead_addr();
    let log = dir.path().join("stderr.log");
    let mut child = gateway()
        .arg("--config")
        .arg(&path)
        .args(["--listen", &addr])
        .env("RUST_LOG", "info")
        .stdout(Stdio::from(write))
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // The gateway logs its services after its start-up lines.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("service echo: /echo")
    {
        if let Some(status) = child.try_wait().unwrap() {
            let err = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("the gateway exited ({status}): {err}");
        }
        assert!(std::time::Instant::now() < until, "never started");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let r = awc::Client::new()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(child.try_wait().unwrap().is_none(), "the gateway exited");
    let _ = child.kill();
    let _ = child.wait();
}

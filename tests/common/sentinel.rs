//! Redis with Sentinel, all on loopback and stopped by their own PIDs: a
//! master, a replica, and three Sentinels (`redis-server --sentinel`) that
//! watch the master as `mymaster`, with a quorum of two and
//! `down-after-milliseconds 2000`.

use super::redis::Redis;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const MASTER_NAME: &str = "mymaster";

pub struct Sentinels {
    pub master: Redis,
    pub replica: Redis,
    pub ports: Vec<u16>,
    children: Vec<Child>,
    _dir: tempfile::TempDir,
}

impl Sentinels {
    pub fn start() -> Sentinels {
        let master = Redis::start();
        let replica = Redis::replica_of(&master);
        let dir = tempfile::tempdir().unwrap();
        let mut ports = Vec::new();
        let mut children = Vec::new();
        for i in 0..3 {
            let port: u16 = super::dead_addr()
                .rsplit(':')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            // Sentinel rewrites its file: one each.
            let conf = dir.path().join(format!("sentinel-{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\n\
                     sentinel monitor {MASTER_NAME} 127.0.0.1 {} 2\n\
                     sentinel down-after-milliseconds {MASTER_NAME} 2000\n\
                     sentinel failover-timeout {MASTER_NAME} 10000\n",
                    master.port
                ),
            )
            .unwrap();
            let child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server --sentinel runs");
            ports.push(port);
            children.push(child);
        }
        let s = Sentinels {
            master,
            replica,
            ports,
            children,
            _dir: dir,
        };
        // Until every Sentinel knows the replica and the other Sentinels:
        // a failover needs both.
        let until = Instant::now() + Duration::from_secs(20);
        while !s.ports.iter().all(|p| {
            let m = sentinel_command(*p, &format!("SENTINEL MASTER {MASTER_NAME}"));
            field(&m, "num-slaves") == Some("1") && field(&m, "num-other-sentinels") == Some("2")
        }) {
            assert!(Instant::now() < until, "the Sentinels never met");
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    /// `redis_sentinels` for a node's `[cluster]`.
    pub fn urls(&self) -> String {
        let urls: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("\"redis://127.0.0.1:{p}\""))
            .collect();
        format!("[{}]", urls.join(", "))
    }

    /// The master's port as the first Sentinel that answers names it.
    pub fn master_port(&self) -> Option<u16> {
        self.ports.iter().find_map(|p| {
            let a = sentinel_command(
                *p,
                &format!("SENTINEL GET-MASTER-ADDR-BY-NAME {MASTER_NAME}"),
            );
            a.lines().last()?.parse().ok()
        })
    }
}

impl Drop for Sentinels {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Sentinels {
    /// The first Sentinel's answer to `cmd`, as [`sentinel_command`] reads
    /// it (`+OK` as `OK`).
    pub fn sentinel_command(&self, cmd: &str) -> String {
        sentinel_command(self.ports[0], cmd)
            .trim_start_matches('+')
            .to_owned()
    }
}

/// A Sentinel's answer to an inline command, as its lines without RESP's
/// type marks (enough for the flat answers read here).
fn sentinel_command(port: u16, cmd: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(format!("{cmd}\r\n").as_bytes()).is_err() {
        return String::new();
    }
    let mut out = Vec::new();
    let mut buf = [0; 4096];
    // Answers are small: read until a pause.
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.ends_with(b"\r\n") {
            let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
        }
    }
    String::from_utf8_lossy(&out)
        .lines()
        .filter(|l| !l.starts_with(['*', '$']))
        .collect::<Vec<_>>()
        .join("\n")
}

/// In a flat name/value answer, the value after `name`.
fn field<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    let mut lines = answer.lines();
    while let Some(l) = lines.next() {
        if l == name {
            return lines.next();
        }
    }
    None
}

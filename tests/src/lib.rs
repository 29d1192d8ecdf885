//! End-to-end test harness: starts real `keel server` processes (and real etcd when asked) in temp dirs, drives
//! them with stock `kubectl`, and cleans everything up on drop (processes killed by pid, dirs removed).

pub mod fake_node;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Path to the `keel` binary, built once per test process (a no-op when up to date).
pub fn keel_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace().join("target"));
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--quiet", "-p", "keel"])
            .current_dir(workspace())
            // The test's own CARGO_MANIFEST_DIR would change build-script inputs and force rebuilds of ring & co.
            .env_remove("CARGO_MANIFEST_DIR")
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "building keel failed: run `cargo build -p keel` to see why"
        );
        target.join("debug/keel")
    })
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on loopback: {e}"))
}

/// Wait until `f` returns true, polling every `step`, at most `limit`.
pub fn wait_for(what: &str, limit: Duration, step: Duration, mut f: impl FnMut() -> bool) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return Ok(());
        }
        std::thread::sleep(step);
    }
    bail!("timed out after {limit:?} waiting for {what}")
}

/// A child process killed (SIGKILL) and reaped on drop.
pub struct Proc {
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    /// The pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Send a signal to this process (and only it).
    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // The pid is our own child's and has not been reaped, so it cannot have been reused.
            let pid = c.id() as i32;
            let _ = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(pid.to_string())
                .status();
        }
    }

    /// Wait for exit up to `limit`; returns the exit status code if it exited.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(st)) = c.try_wait()
            {
                self.child = None;
                return Some(st.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Kill with SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The tail of the process log, for failure messages.
    pub fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_logged(mut cmd: Command, log: &Path) -> Result<Proc> {
    let f = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let f2 = f.try_clone()?;
    let child = cmd
        .stdout(Stdio::from(f))
        .stderr(Stdio::from(f2))
        .stdin(Stdio::null())
        .spawn()?;
    Ok(Proc {
        child: Some(child),
        log: log.to_path_buf(),
    })
}

/// A real etcd on loopback in a temp dir.
pub struct Etcd {
    /// The client URL.
    pub endpoint: String,
    proc: Proc,
    _dir: tempfile::TempDir,
}

impl Etcd {
    /// Start etcd and wait until it answers.
    pub fn start() -> Result<Self> {
        let bin = Path::new("/usr/bin/etcd");
        if !bin.exists() {
            bail!("/usr/bin/etcd is missing: install etcd-server (apt-get install etcd-server), or run `make test`");
        }
        let dir = tempfile::tempdir()?;
        let (client, peer) = (free_port(), free_port());
        let endpoint = format!("http://127.0.0.1:{client}");
        let mut cmd = Command::new(bin);
        cmd.args(["--name", "default", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &endpoint, "--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args(["--initial-cluster", &format!("default=http://127.0.0.1:{peer}")]);
        let proc = spawn_logged(cmd, &dir.path().join("etcd.log"))?;
        let health = format!("127.0.0.1:{client}");
        wait_for(
            "etcd to listen",
            Duration::from_secs(30),
            Duration::from_millis(50),
            || std::net::TcpStream::connect(&health).is_ok(),
        )
        .with_context(|| proc.log_tail())?;
        Ok(Self {
            endpoint,
            proc,
            _dir: dir,
        })
    }

    /// The etcd process.
    pub fn proc(&mut self) -> &mut Proc {
        &mut self.proc
    }
}

/// Which store a test server uses.
#[derive(Debug, Clone)]
pub enum Store {
    /// Embedded SQLite.
    Sqlite,
    /// etcd at this endpoint.
    Etcd(String),
}

/// A `keel server` process in its own data dir on a free loopback port.
pub struct Server {
    /// The data dir (kubeconfig.yaml lives here).
    pub data_dir: PathBuf,
    /// `127.0.0.1:<port>`.
    pub listen: String,
    /// The datastore.
    pub store: Store,
    /// Extra `keel server` flags.
    pub args: Vec<String>,
    proc: Option<Proc>,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Start a server on SQLite.
    pub fn start() -> Result<Self> {
        Self::start_with(Store::Sqlite)
    }

    /// Start a server on the given store.
    pub fn start_with(store: Store) -> Result<Self> {
        Self::start_args(store, &[])
    }

    /// Start a server on the given store with extra `keel server` flags.
    pub fn start_args(store: Store, args: &[&str]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let data_dir = dir.path().join("data");
        let listen = format!("127.0.0.1:{}", free_port());
        let mut s = Self {
            data_dir,
            listen,
            store,
            args: args.iter().map(|a| a.to_string()).collect(),
            proc: None,
            _dir: Some(dir),
        };
        s.launch()?;
        Ok(s)
    }

    /// (Re)start the process on the same data dir and port.
    pub fn launch(&mut self) -> Result<()> {
        let mut cmd = Command::new(keel_bin());
        cmd.arg("server")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen", &self.listen, "--no-agent"]);
        if let Store::Etcd(ep) = &self.store {
            cmd.args(["--datastore", "etcd", "--etcd-endpoints", ep]);
        }
        cmd.args(&self.args);
        std::fs::create_dir_all(&self.data_dir)?;
        let log = self
            .data_dir
            .join(format!("server-{}.log", Instant::now().elapsed().as_nanos()));
        let proc = spawn_logged(cmd, &log)?;
        let kubeconfig = self.kubeconfig();
        let addr = self.listen.clone();
        let ready = wait_for(
            "keel server to be ready",
            Duration::from_secs(60),
            Duration::from_millis(50),
            || kubeconfig.exists() && std::net::TcpStream::connect(&addr).is_ok(),
        );
        if let Err(e) = ready {
            bail!("{e}\n{}", proc.log_tail());
        }
        self.proc = Some(proc);
        Ok(())
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir.join("kubeconfig.yaml")
    }

    /// The server process.
    pub fn proc(&mut self) -> Option<&mut Proc> {
        self.proc.as_mut()
    }

    /// Stop with SIGKILL (no cleanup in the server).
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// Run stock kubectl against this server.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_stdin(args, None)
    }

    /// Run kubectl with `stdin` piped in (for `-f -`).
    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new("/usr/bin/kubectl");
        cmd.arg("--kubeconfig").arg(self.kubeconfig()).args(args);
        cmd.env("HOME", self.data_dir.join("home")).env_remove("KUBECONFIG");
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("running /usr/bin/kubectl: {e} (install stock kubectl)"));
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            let _ = pipe.write_all(input.as_bytes());
        }
        child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("waiting for kubectl: {e}"))
    }

    /// kubectl that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// kubectl that must fail; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `kubectl apply -f -` with a manifest; returns stdout.
    pub fn apply(&self, manifest: &str) -> String {
        let out = self.kubectl_stdin(&["apply", "-f", "-"], Some(manifest));
        assert!(
            out.status.success(),
            "kubectl apply failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl get ... -o json` parsed.
    pub fn get_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "json"]);
        let out = self.ok(&a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl {a:?} printed invalid JSON: {e}\n{out}"))
    }
}

/// A long-running kubectl (`get -w`) whose stdout is read line by line; killed by pid and reaped on drop.
pub struct KubectlStream {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl KubectlStream {
    /// Wait up to `limit` for the next line satisfying `f` and return it; every line read is kept in [`Self::seen`].
    pub fn wait_line(&mut self, what: &str, limit: Duration, f: impl Fn(&str) -> bool) -> Result<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if f(&line) {
                        return Ok(line);
                    }
                }
                Err(e) => bail!(
                    "no line with {what} from kubectl within {limit:?} ({e}); stdout so far:\n{}\nstderr:\n{}",
                    self.seen.join("\n"),
                    self.stderr()
                ),
            }
        }
    }

    /// Every stdout line read so far.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }

    /// What kubectl printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for KubectlStream {
    fn drop(&mut self) {
        // Our own unreaped child: the pid cannot have been reused.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP response read with curl.
#[derive(Debug, Clone)]
pub struct HttpReply {
    /// The status code.
    pub code: u16,
    /// The body as text.
    pub body: String,
}

impl HttpReply {
    /// The body parsed as JSON (panics with the body when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("response body is not JSON ({e}): {}", self.body))
    }
}

impl Server {
    /// Start a long-running kubectl (for `get -w`) whose stdout lines can be awaited.
    pub fn kubectl_stream(&self, args: &[&str]) -> KubectlStream {
        use std::io::{BufRead, Read};
        let mut cmd = Command::new("/usr/bin/kubectl");
        cmd.arg("--kubeconfig").arg(self.kubeconfig()).args(args);
        cmd.env("HOME", self.data_dir.join("home")).env_remove("KUBECONFIG");
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("running /usr/bin/kubectl: {e} (install stock kubectl)"));
        let (tx, lines) = std::sync::mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        if let Some(mut err) = child.stderr.take() {
            let sink = stderr.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut s) = sink.lock() {
                        s.push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                }
            });
        }
        KubectlStream {
            child,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    /// The admin bearer token (`<data dir>/admin-token`).
    pub fn admin_token(&self) -> String {
        let path = self.data_dir.join("admin-token");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
            .trim()
            .to_string()
    }

    /// A raw HTTPS request with curl (`-sk`): `auth` adds the admin bearer token; `body` is (content type, bytes).
    pub fn curl(&self, method: &str, path: &str, auth: bool, body: Option<(&str, &[u8])>) -> HttpReply {
        self.curl_args(&[], method, path, auth, body)
    }

    /// [`Server::curl`] with extra curl arguments (e.g. `--http1.1`).
    pub fn curl_args(
        &self,
        extra: &[&str],
        method: &str,
        path: &str,
        auth: bool,
        body: Option<(&str, &[u8])>,
    ) -> HttpReply {
        let mut cmd = Command::new("curl");
        cmd.args(["-sk", "-X", method, "-w", "\n%{http_code}"]).args(extra);
        if auth {
            cmd.arg("-H")
                .arg(format!("Authorization: Bearer {}", self.admin_token()));
        }
        if let Some((content_type, _)) = body {
            cmd.arg("-H")
                .arg(format!("Content-Type: {content_type}"))
                .args(["--data-binary", "@-"]);
        }
        cmd.arg(format!("https://{}{path}", self.listen));
        cmd.stdin(if body.is_some() { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("running curl: {e} (apt-get install curl)"));
        if let (Some((_, bytes)), Some(mut pipe)) = (body, child.stdin.take()) {
            // The server may answer (413) before reading everything: a broken pipe here is expected then.
            let _ = pipe.write_all(bytes);
        }
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("waiting for curl: {e}"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
        let code = code.trim().parse().unwrap_or_else(|_| {
            panic!(
                "curl {method} {path} printed no status code: {text}\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        HttpReply {
            code,
            body: body.to_string(),
        }
    }
}

impl Server {
    /// [`Server::launch`], then wait until `/readyz` answers 200 (a bound port alone does not mean the server
    /// started: it binds before bootstrapping). Fails with the log when the process exits during startup.
    pub fn launch_ready(&mut self) -> Result<()> {
        if let Err(e) = self.launch() {
            // The log tail is mostly a backtrace when startup fails; the cause is at the top of the log.
            let first = e.to_string().lines().next().unwrap_or_default().to_string();
            bail!("{first}\nstart of the server log:\n{}", self.newest_log_head(12));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(p) = self.proc.as_mut()
                && let Some(code) = p.wait_exit(Duration::from_millis(1))
            {
                bail!(
                    "keel server exited with code {code} during startup:\n{}",
                    self.newest_log_head(12)
                );
            }
            if self.curl("GET", "/readyz", false, None).code == 200 {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = self.proc.as_ref().map(Proc::log_tail).unwrap_or_default();
                bail!("keel server did not become ready within 60s:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The first `lines` lines of the most recent server log in the data dir.
    pub fn newest_log_head(&self, lines: usize) -> String {
        let newest = std::fs::read_dir(&self.data_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("server-"))
            .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok());
        let text = newest
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .unwrap_or_default();
        text.lines().take(lines).collect::<Vec<_>>().join("\n")
    }
}

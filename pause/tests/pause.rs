//! keel-pause run as a process: `-v`, SIGTERM/SIGINT, reaping orphans as PID 1 of a new pid namespace, and the
//! shape of the binary. Privileged (the namespace test needs root and util-linux's `unshare`/`nsenter`).

// Test helpers fail by panicking with a message, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use keel_pause::footprint;

/// Generous bound for anything to happen; the tests never judge speed, this only keeps a broken build from hanging.
const PATIENCE: Duration = Duration::from_secs(30);

fn bin() -> PathBuf {
    // KEEL_PAUSE_BIN lets `footprint_of_a_running_pause` measure another build (for example the release binary).
    std::env::var_os("KEEL_PAUSE_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_keel-pause")), PathBuf::from)
}

/// Sends `signal` to `pid` with kill(1); only ever used on processes these tests started.
fn kill(signal: &str, pid: u32) -> bool {
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Polls `probe` until it returns `Ok`, panicking with `what` and the last `Err` after [`PATIENCE`].
fn eventually<T>(what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last) => assert!(
                start.elapsed() < PATIENCE,
                "gave up waiting for {what}; last seen: {last}"
            ),
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A process started by a test: SIGKILLed and waited for on drop, also when the test panics.
struct Started {
    child: Option<Child>,
    /// keel-pause when `child` is the `unshare` that forked it: killed first on drop, so that `unshare` reaps it.
    inner: Option<u32>,
}

impl Started {
    fn spawn(cmd: &mut Command) -> Started {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Started {
            child: Some(child),
            inner: None,
        }
    }

    fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .expect("child is present until finish()")
    }

    /// Waits for the process to exit and collects its output.
    fn finish(mut self) -> Output {
        let child = self.child.take().expect("finish() runs once");
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let output = rx.recv_timeout(PATIENCE).unwrap_or_else(|_| {
            kill("KILL", pid);
            panic!("pid {pid} did not exit");
        });
        let _ = waiter.join();
        output.unwrap_or_else(|e| panic!("waiting for pid {pid}: {e}"))
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // While `unshare` runs it has not reaped keel-pause, so that pid is still ours to kill.
            if let (Some(inner), Ok(None)) = (self.inner, child.try_wait()) {
                kill("KILL", inner);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn pause_cmd() -> Command {
    let mut cmd = Command::new(bin());
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

fn wait_ready(pid: u32) {
    footprint::wait_ready(pid, PATIENCE).unwrap_or_else(|e| panic!("keel-pause did not start: {e}"));
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn expect_clean_exit(status: ExitStatus, stderr: &str) {
    assert_eq!(
        status.code(),
        Some(0),
        "keel-pause should exit 0, got {status}; stderr: {stderr}"
    );
}

#[test]
fn dash_v_prints_the_version_and_exits_zero() {
    for args in [&["-v"][..], &["-V"], &["--foo", "-v"]] {
        let out = Command::new(bin()).args(args).output().expect("run keel-pause -v");
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert_eq!(
            text(&out.stdout),
            format!("keel-pause {}\n", env!("CARGO_PKG_VERSION")),
            "{args:?}"
        );
        assert!(out.stderr.is_empty(), "{args:?}: {}", text(&out.stderr));
    }
}

fn exits_zero_on(signal: &str, message: &str) {
    let pause = Started::spawn(&mut pause_cmd());
    wait_ready(pause.pid());
    // It is alive and waiting, not exiting on its own.
    assert_eq!(
        footprint::status_field(pause.pid(), "State")
            .expect("status of keel-pause")
            .chars()
            .next(),
        Some('S')
    );
    assert!(kill(signal, pause.pid()), "kill -{signal}");
    let out = pause.finish();
    let stderr = text(&out.stderr);
    expect_clean_exit(out.status, &stderr);
    assert!(
        stderr.contains("Warning: keel-pause should be the first process"),
        "not PID 1, so it warns: {stderr}"
    );
    assert!(stderr.contains(message), "stderr: {stderr}");
}

#[test]
fn sigterm_exits_zero() {
    exits_zero_on("TERM", "Shutting down, got signal: Terminated");
}

#[test]
fn sigint_exits_zero() {
    exits_zero_on("INT", "Shutting down, got signal: Interrupt");
}

fn need(tool: &str) {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "{tool} is missing: install util-linux (apt-get install util-linux)"
    );
}

/// Host pids of the children of `pid` (from the thread's `children` file).
fn children(pid: u32) -> Vec<u32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|s| s.split_whitespace().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}

fn state(pid: u32) -> String {
    footprint::status_field(pid, "State").unwrap_or_else(|_| "gone".into())
}

/// keel-pause as PID 1 of a new pid namespace adopts the orphans of a process that exits and reaps them all.
#[test]
fn pid1_reaps_orphaned_grandchildren_in_its_pid_namespace() {
    need("unshare");
    need("nsenter");
    const ORPHANS: usize = 24;
    let dir = tempfile::tempdir().expect("temp dir");
    let report = dir.path().join("ppids");

    let mut cmd = Command::new("unshare");
    // --kill-child: should the test process die without the guard's drop, keel-pause still dies with unshare.
    cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child", "--"])
        .arg(bin());
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut ns = Started::spawn(&mut cmd);
    let pause = eventually("unshare to fork keel-pause", || {
        children(ns.pid())
            .first()
            .copied()
            .ok_or_else(|| "no child yet".to_string())
    });
    ns.inner = Some(pause);
    wait_ready(pause);

    // Inside the namespace: each of ORPHANS short-lived shells starts a grandchild in the background and exits at
    // once, so the grandchild is orphaned and re-parented to PID 1. Half the grandchildren exit at once (often
    // before their parent, so they reach PID 1 as zombies); the others first record the parent they were
    // re-parented to, then exit.
    let script = format!(
        r#"i=0; while [ $i -lt {half} ]; do
             sh -c 'sh -c "sleep 0.2; read -r _ _ _ ppid _ < /proc/self/stat; echo \$ppid >> {report}" & exit 0'
             sh -c 'true & exit 0'
             i=$((i+1))
           done"#,
        half = ORPHANS / 2,
        report = report.display(),
    );
    let mut enter = Command::new("nsenter");
    enter
        .arg(format!("--target={pause}"))
        .args(["--pid", "--mount", "--", "sh", "-c", &script]);
    enter.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = Started::spawn(&mut enter).finish();
    assert!(
        out.status.success(),
        "nsenter script: {} {}",
        out.status,
        text(&out.stderr)
    );

    // Every recording orphan saw PID 1 as its parent: the orphans really were keel-pause's to reap.
    let ppids = eventually("the orphans to report their parent", || {
        let ppids = fs::read_to_string(&report).unwrap_or_default();
        if ppids.lines().count() == ORPHANS / 2 {
            Ok(ppids)
        } else {
            Err(format!("{ppids:?}"))
        }
    });
    assert!(
        ppids.lines().all(|p| p == "1"),
        "orphans were not re-parented to keel-pause (PID 1): {ppids:?}"
    );

    // And none of them is left: no zombie (nor anything else) among keel-pause's children.
    eventually("keel-pause to reap every orphan", || {
        let left: Vec<String> = children(pause)
            .into_iter()
            .map(|c| format!("{c}: {}", state(c)))
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("children of keel-pause: {left:?}"))
        }
    });
    assert!(
        state(pause).starts_with('S'),
        "keel-pause is still waiting: {}",
        state(pause)
    );

    // SIGTERM from the parent namespace ends it with 0 (unshare passes the status on), without the not-PID-1 warning.
    assert!(kill("TERM", pause), "kill -TERM keel-pause");
    let out = ns.finish();
    let stderr = text(&out.stderr);
    expect_clean_exit(out.status, &stderr);
    assert!(!stderr.contains("Warning"), "PID 1 does not warn: {stderr}");
    assert!(
        stderr.contains("Shutting down, got signal: Terminated"),
        "stderr: {stderr}"
    );
}

/// The binary is static (no program interpreter, no dynamic section) and runs without libc.
#[test]
fn binary_is_static() {
    assert!(
        footprint::is_static_elf(&bin()).expect("read keel-pause"),
        "{} is dynamically linked",
        bin().display()
    );
    let mut elf = Vec::new();
    fs::File::open(bin())
        .and_then(|mut f| f.read_to_end(&mut elf))
        .expect("read keel-pause");
    for needle in [&b"GLIBC_"[..], b"ld-linux"] {
        assert!(
            !elf.windows(needle.len()).any(|w| w == needle),
            "{} mentions {}",
            bin().display(),
            text(needle)
        );
    }
}

/// The figures `keel bench pods` reports; run with `--nocapture` (and KEEL_PAUSE_BIN=target/release/keel-pause for
/// the release build) to see them. Checks that they can be measured, not how large they are.
#[test]
fn footprint_of_a_running_pause() {
    let fp = footprint::measure(&bin()).expect("measure keel-pause");
    assert_eq!(fp.binary_bytes, fs::metadata(bin()).expect("stat keel-pause").len());
    assert!(fp.rss_kib > 0, "{fp:?}");
    eprintln!(
        "keel-pause {}: {} bytes, VmRSS {} kB (pause.c -Os -static: 686792 bytes, 700 kB)",
        path(&bin()),
        fp.binary_bytes,
        fp.rss_kib
    );
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

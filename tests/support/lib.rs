//! # tern-tests — test support for real kernels and real peers
//!
//! **Owns:** throw-away network namespaces joined by veth pairs, running commands and
//! threads inside them, starting and stopping real daemons (BIRD, GoBGP, FRR, ExaBGP, etcd),
//! and the rule for tests that need root or a binary: skip loudly on a developer machine,
//! fail under `CI=true` (CI installs everything, so in CI nothing skips).
//!
//! Every resource here is removed on `Drop`, so a failing test cleans up too. Addresses live
//! only inside the namespaces a test creates.
//!
//! **Must not know:** Tern's own crates: it is used by their tests and must not depend on them.

#![forbid(unsafe_code)]

use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub mod bird16;
pub mod etcd;
pub mod lan;
pub mod observe;
pub mod peers;

/// True when running under CI (`CI=true`), where a missing prerequisite is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Reports a missing prerequisite: panics in CI, prints a loud skip line otherwise.
/// Returns `false` so callers can `if !prerequisite(..) { return; }`.
fn missing(test: &str, what: &str) -> bool {
    if in_ci() {
        panic!("{test}: {what} is missing, and CI=true forbids skipping");
    }
    eprintln!(
        "\n*** SKIPPED {test}: {what} is missing (run ./test.sh as root to install it) ***\n"
    );
    false
}

/// Whether the test may use namespaces: root and a working `ip netns`.
pub fn require_root(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        return missing(test, "root (network namespaces)");
    }
    if which("ip").is_none() {
        return missing(test, "the `ip` command (iproute2)");
    }
    true
}

/// Finds an executable on `PATH` (or an absolute path that exists).
pub fn which(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.is_absolute() {
        return p.is_file().then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    for dir in
        std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
    {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    None
}

/// Finds a binary the test needs, or skips loudly (fails in CI).
pub fn require_binary(test: &str, name: &str) -> Option<PathBuf> {
    match which(name) {
        Some(p) => Some(p),
        None => {
            missing(test, &format!("the `{name}` binary"));
            None
        }
    }
}

/// A binary of this workspace for a test: `$ENV_OVERRIDE` if set, else `BIN` next to the
/// test executable (cargo's target profile folder), built with `cargo build -p PACKAGE --bin
/// BIN` when missing. Skips loudly when it cannot be had (fails in CI).
pub fn workspace_binary(
    test: &str,
    package: &str,
    bin: &str,
    env_override: &str,
) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env_override) {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join(bin);
    if !path.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let _ = Command::new(cargo)
            .args(["build", "-p", package, "--bin", bin])
            .status();
    }
    if path.is_file() {
        Some(path)
    } else {
        missing(
            test,
            &format!(
                "the {bin} binary ({}; cargo build -p {package})",
                path.display()
            ),
        );
        None
    }
}

/// Where `./test.sh` unpacks BIRD 2 (it conflicts with BIRD 1.6 in apt).
/// Returns the `bird` binary and the library directory for `LD_LIBRARY_PATH`.
pub fn bird2_paths() -> Option<(PathBuf, PathBuf)> {
    let prefix = std::env::var_os("TERN_BIRD2_PREFIX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/tern-test/bird2"));
    let bin = prefix.join("usr/sbin/bird");
    bin.is_file()
        .then(|| (bin, prefix.join("usr/lib/x86_64-linux-gnu")))
}

/// Runs a command to completion, panicking with its output if it fails.
pub fn run<I, S>(program: &str, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(program);
    cmd.args(args);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed with {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// A short unique name, safe for namespaces and interfaces (≤ 15 bytes).
pub fn unique_name(prefix: &str) -> String {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id() % 100_000;
    let suffix = format!("{pid}x{n}");
    // Interface names hold at most 15 bytes: shorten the prefix, never the unique part.
    let keep = 15usize.saturating_sub(suffix.len());
    let prefix: String = prefix
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(keep)
        .collect();
    format!("{prefix}{suffix}")
}

/// A network namespace that exists for the lifetime of this value.
///
/// Dropping it kills every process still inside and deletes the namespace.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a fresh namespace with loopback up.
    pub fn new(prefix: &str) -> Netns {
        let name = unique_name(prefix);
        run("ip", ["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(["link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Path of the namespace file, for `setns`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/var/run/netns").join(&self.name)
    }

    /// A `Command` that runs `program` inside this namespace (`ip netns exec`).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs `program args` inside the namespace; panics on failure.
    pub fn exec<I, S>(&self, program: &str, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(program);
        cmd.args(args);
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program} in {}: {e}", self.name));
        if !out.status.success() {
            panic!(
                "{cmd:?} failed with {}: {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        out
    }

    /// Runs `ip ARGS` inside the namespace and returns stdout as text.
    pub fn ip<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut full: Vec<std::ffi::OsString> = vec!["-n".into(), self.name.clone().into()];
        full.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        String::from_utf8_lossy(&run("ip", full).stdout).into_owned()
    }

    /// Runs `f` on a new thread whose network namespace is this one, and returns its result.
    /// Sockets opened inside `f` stay in this namespace after the thread ends.
    pub fn run_in<T, F>(&self, f: F) -> T
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let path = self.path();
        std::thread::spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("setns {}: {e}", path.display()));
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    }

    /// Spawns a long-running process inside the namespace; it is killed when dropped.
    pub fn spawn(&self, program: impl AsRef<OsStr>, args: &[&str]) -> Daemon {
        let mut cmd = self.command(program);
        cmd.args(args).stdin(Stdio::null());
        Daemon::spawn(cmd)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kill what is left inside, then remove the namespace (and with it its veth ends).
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A veth pair: `name_a` in `a`, `name_b` in `b`, both down and unaddressed.
pub(crate) fn veth_named(a: &Netns, name_a: &str, b: &Netns, name_b: &str) {
    run(
        "ip",
        [
            "link",
            "add",
            name_a,
            "netns",
            a.name(),
            "type",
            "veth",
            "peer",
            "name",
            name_b,
            "netns",
            b.name(),
        ],
    );
}

/// Creates a veth pair with one end in each namespace, addresses them (CIDR notation, IPv4
/// or IPv6; empty for none) and brings both ends up. Returns the two interface names.
pub fn veth(a: &Netns, addr_a: &[&str], b: &Netns, addr_b: &[&str]) -> (String, String) {
    let name_a = unique_name("va");
    let name_b = unique_name("vb");
    veth_named(a, &name_a, b, &name_b);
    for (ns, name, addrs) in [(a, &name_a, addr_a), (b, &name_b, addr_b)] {
        for addr in addrs {
            let mut args = vec!["addr", "add", addr, "dev", name.as_str()];
            if addr.contains(':') {
                args.push("nodad");
            }
            ns.ip(args);
        }
        ns.ip(["link", "set", name.as_str(), "up"]);
    }
    (name_a, name_b)
}

/// A child process that is killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
}

impl Daemon {
    pub fn spawn(mut cmd: Command) -> Daemon {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
        Daemon { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (e.g. SIGSTOP to freeze a peer, SIGTERM to stop it).
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, sig);
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 50 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A temporary directory removed on drop (configs, sockets and pid files of daemons).
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let path = std::env::temp_dir().join(unique_name(prefix));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to `name` inside the directory and returns the full path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.path.join(name);
        std::fs::write(&p, contents).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_fit_an_interface_name_and_differ() {
        let a = unique_name("a-very-long-prefix-for-a-test");
        let b = unique_name("a-very-long-prefix-for-a-test");
        assert!(a.len() <= 15, "{a} is longer than 15 bytes");
        assert_ne!(a, b);
        // pid (≤ 5 digits) + 'x' + counter leave at least 4 bytes of the prefix.
        assert!(a.starts_with("aver"), "{a} lost its prefix");
    }

    #[test]
    fn two_namespaces_reach_each_other_over_veth() {
        if !require_root("two_namespaces_reach_each_other_over_veth") {
            return;
        }
        let a = Netns::new("tta");
        let b = Netns::new("ttb");
        veth(
            &a,
            &["192.0.2.1/24", "2001:db8::1/64"],
            &b,
            &["192.0.2.2/24", "2001:db8::2/64"],
        );
        a.exec("ping", ["-c", "1", "-W", "2", "192.0.2.2"]);
        a.exec("ping", ["-6", "-c", "1", "-W", "2", "2001:db8::2"]);
        let ns_name = a.name().to_string();
        drop(a);
        let listed = String::from_utf8_lossy(&run("ip", ["netns", "list"]).stdout).into_owned();
        assert!(
            !listed.contains(&ns_name),
            "namespace {ns_name} was not removed"
        );
    }

    #[test]
    fn run_in_sees_the_namespace_interfaces() {
        if !require_root("run_in_sees_the_namespace_interfaces") {
            return;
        }
        let a = Netns::new("ttc");
        let b = Netns::new("ttd");
        let (va, _) = veth(&a, &["198.51.100.1/24"], &b, &["198.51.100.2/24"]);
        let seen = a.run_in(move || {
            std::path::Path::new("/proc/self/net/dev").exists()
                && std::fs::read_to_string("/proc/thread-self/net/dev")
                    .unwrap_or_default()
                    .contains(&va)
        });
        assert!(seen, "thread in the namespace does not see its veth");
    }
}

//! The namespaces of one measurement and their cleanup, also on Ctrl-C.
//!
//! ```text
//!  generator ns                DUT ns                      receiver ns
//!  10.1.0.2/24  ─── veth ───  10.1.0.1/24
//!                              10.2.0.1/16 ─── veth ───  10.2.0.2/16, 10.2.0.3/16, … (one per session)
//! ```
//! Every namespace is registered so that a signal handler can kill what runs inside and
//! delete it before the harness exits.

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use anyhow::{Context, bail};
use tern_tests::{Netns, veth};

static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Set once the signal path has cleaned up: no namespace may be created after that.
static STOPPING: AtomicBool = AtomicBool::new(false);

fn register(ns: &Netns) {
    let mut live = LIVE.lock().unwrap_or_else(PoisonError::into_inner);
    if STOPPING.load(Ordering::SeqCst) {
        // Created while the process is exiting: delete it now and wait for the exit.
        let _ = Command::new("ip")
            .args(["netns", "del", ns.name()])
            .status();
        drop(live);
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
    live.push(ns.name().to_string());
}

fn unregister(name: &str) {
    LIVE.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .retain(|n| n != name);
}

/// Kills everything in every live namespace and deletes them (the signal path).
pub fn cleanup_all() {
    let names: Vec<String> = {
        let mut live = LIVE.lock().unwrap_or_else(PoisonError::into_inner);
        STOPPING.store(true, Ordering::SeqCst);
        live.drain(..).collect()
    };
    for name in names {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &name]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
    }
}

/// Blocks SIGINT/SIGTERM in this thread (call first, before any thread starts, so that every
/// thread inherits the mask) and starts the thread that cleans up and exits on them.
pub fn install_signal_cleanup() -> anyhow::Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGHUP);
    set.thread_block().context("blocking signals")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Ok(sig) = set.wait() {
                eprintln!("\ntern-harness: {sig}: removing namespaces and stopping daemons");
                cleanup_all();
                std::process::exit(130);
            }
        })?;
    Ok(())
}

/// A registered namespace (deleted on drop, with everything still inside).
#[derive(Debug)]
pub struct Ns(pub Netns);

impl Ns {
    /// A fresh namespace.
    pub fn new(prefix: &str) -> Ns {
        let ns = Netns::new(prefix);
        register(&ns);
        Ns(ns)
    }

    /// The namespace file, for `setns`.
    pub fn path(&self) -> std::path::PathBuf {
        self.0.path()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        unregister(self.0.name());
    }
}

/// Generator, DUT and receiver namespaces, wired as in the module docs.
#[derive(Debug)]
pub struct Topology {
    /// The generator's namespace (10.1.0.2).
    pub generator: Ns,
    /// The DUT's namespace (10.1.0.1 and 10.2.0.1).
    pub dut: Ns,
    /// The receivers' namespace.
    pub receivers: Ns,
    /// One address per receiver session.
    pub receiver_addrs: Vec<Ipv4Addr>,
}

/// The DUT's address towards the generator.
pub const DUT_GEN: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
/// The generator's address.
pub const GEN: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
/// The DUT's address towards the receivers.
pub const DUT_RECV: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 1);

/// The `i`-th receiver address: 10.2.0.2, 10.2.0.3, …
pub fn receiver_addr(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(DUT_RECV) + 1 + i)
}

/// Adds many addresses to `dev` in `ns` with one `ip -batch`.
pub fn add_addresses(ns: &Ns, dev: &str, addrs: &[Ipv4Addr], plen: u8) -> anyhow::Result<()> {
    if addrs.is_empty() {
        return Ok(());
    }
    let mut child = Command::new("ip")
        .args(["-n", ns.0.name(), "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("ip -batch")?;
    {
        let mut stdin = child.stdin.take().context("ip -batch stdin")?;
        for a in addrs {
            writeln!(stdin, "addr add {a}/{plen} dev {dev}")?;
        }
    }
    if !child.wait()?.success() {
        bail!("ip -batch addr add failed");
    }
    Ok(())
}

impl Topology {
    /// Builds the three namespaces with `receivers` receiver addresses.
    pub fn new(receivers: u32) -> anyhow::Result<Topology> {
        let generator = Ns::new("thg");
        let dut = Ns::new("thd");
        let recv = Ns::new("thr");
        veth(&generator.0, &["10.1.0.2/24"], &dut.0, &["10.1.0.1/24"]);
        let addrs: Vec<Ipv4Addr> = (0..receivers.max(1)).map(receiver_addr).collect();
        let first = format!("{}/16", addrs[0]);
        let (_, rdev) = veth(&dut.0, &["10.2.0.1/16"], &recv.0, &[first.as_str()]);
        add_addresses(&recv, &rdev, &addrs[1..], 16)?;
        Ok(Topology {
            generator,
            dut,
            receivers: recv,
            receiver_addrs: addrs,
        })
    }
}

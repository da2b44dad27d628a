//! The harness's own BGP speakers: raw TCP, blocking I/O, one thread per session.
//!
//! A [`Speaker`] connects from its own address to the device under test (or accepts, for the
//! harness floor), exchanges OPEN and KEEPALIVE (RFC 4271 §8.2.2: OpenSent → OpenConfirm →
//! Established), then writes whatever pre-encoded UPDATE streams it is given and counts the
//! prefixes it holds by decoding every UPDATE it receives with `bgp-wire`. Counting is against
//! a [`Universe`] of expected prefixes kept as a bitmap, so a receiver knows exactly when it
//! holds all of them (or none) and records that instant.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bgp_wire::{
    Capability, DecodeContext, EncodeContext, Family, Message, Open, Prefix, encode_keepalive,
    next_message,
};
use bytes::BytesMut;

/// Nanoseconds since the harness started (one clock for every thread).
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A contiguous run of equal-length IPv4 prefixes: `base`, `base + 1 block`, …
#[derive(Clone, Copy, Debug)]
pub struct Block {
    /// First prefix's address.
    pub base: Ipv4Addr,
    /// Prefix length of every prefix in the run.
    pub len: u8,
    /// How many prefixes.
    pub count: u32,
}

impl Block {
    /// The `i`-th prefix of the run (`None` if the base is not aligned to the length).
    pub fn prefix(&self, i: u32) -> Option<Prefix> {
        let step = 1u32 << (32 - u32::from(self.len));
        let addr = u32::from(self.base).wrapping_add(i.wrapping_mul(step));
        Prefix::v4(Ipv4Addr::from(addr), self.len).ok()
    }

    fn index(&self, addr: u32, len: u8) -> Option<u32> {
        if len != self.len {
            return None;
        }
        let off = addr.checked_sub(u32::from(self.base))?;
        let i = off >> (32 - u32::from(self.len));
        (i < self.count && off & ((1u32 << (32 - u32::from(self.len))) - 1) == 0).then_some(i)
    }
}

/// The prefixes a receiver expects, as blocks; anything else is counted as unexpected.
#[derive(Clone, Debug, Default)]
pub struct Universe {
    blocks: Vec<Block>,
}

impl Universe {
    /// A universe of these blocks.
    pub fn new(blocks: Vec<Block>) -> Universe {
        Universe { blocks }
    }

    /// Number of prefixes in the universe.
    pub fn size(&self) -> u64 {
        self.blocks.iter().map(|b| u64::from(b.count)).sum()
    }

    fn index(&self, p: &Prefix) -> Option<usize> {
        let Prefix::V4 { .. } = p else { return None };
        let std::net::IpAddr::V4(a) = p.addr() else {
            return None;
        };
        let addr = u32::from(a);
        let mut offset = 0usize;
        for b in &self.blocks {
            if let Some(i) = b.index(addr, p.len()) {
                return Some(offset + i as usize);
            }
            offset += b.count as usize;
        }
        None
    }
}

/// What a session's reader shares with the coordinator.
#[derive(Debug, Default)]
pub struct Progress {
    /// Prefixes of the universe currently held.
    pub held: AtomicU64,
    /// The count the coordinator waits for.
    pub target: AtomicU64,
    /// When `held` first equalled `target` since the target was set (0: not yet).
    pub reached_at: AtomicU64,
    /// When the last UPDATE arrived.
    pub last_update_at: AtomicU64,
    /// Prefixes outside the universe seen announced.
    pub unexpected: AtomicU64,
    /// Established (OPEN exchange done).
    pub established: AtomicBool,
    /// When the session became Established ([`now_ns`]).
    pub established_at: AtomicU64,
    /// Why the session ended, if it did.
    pub error: Mutex<Option<String>>,
}

impl Progress {
    /// Sets a new target and forgets when the previous one was reached (checking at once).
    pub fn set_target(&self, target: u64) {
        self.reached_at.store(0, Ordering::SeqCst);
        self.target.store(target, Ordering::SeqCst);
        if self.held.load(Ordering::SeqCst) == target {
            let _ = self.reached_at.compare_exchange(
                0,
                now_ns().max(1),
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
        }
    }

    /// The session's error, if it ended.
    pub fn error(&self) -> Option<String> {
        self.error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// How a speaker opens its session.
#[derive(Clone, Debug)]
pub enum Connect {
    /// Connect from `local` to `remote` (port 179), retrying until the deadline.
    Active {
        /// Our address.
        local: Ipv4Addr,
        /// The DUT's address.
        remote: Ipv4Addr,
    },
    /// Accept one connection on `local:179` (the harness floor's receiver).
    Passive {
        /// Our address.
        local: Ipv4Addr,
    },
}

/// One session's parameters.
#[derive(Clone, Debug)]
pub struct SpeakerConfig {
    /// Network namespace file (`/var/run/netns/NAME`) the session's socket lives in.
    pub netns: PathBuf,
    /// Active or passive.
    pub connect: Connect,
    /// Our AS.
    pub asn: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Prefixes this session counts.
    pub universe: Arc<Universe>,
    /// UPDATEs the session thread sends itself as soon as it is Established.
    pub initial: Option<bytes::Bytes>,
}

/// A running session: the writer half and the shared progress.
#[derive(Debug)]
pub struct Speaker {
    writer: Arc<Mutex<Option<TcpStream>>>,
    /// What the reader has seen.
    pub progress: Arc<Progress>,
}

const HOLD_TIME: u16 = 90;
/// How long a speaker keeps trying to reach Established.
const CONNECT_DEADLINE: Duration = Duration::from_secs(60);

impl Speaker {
    /// Starts the session on its own thread; returns at once.
    pub fn start(cfg: SpeakerConfig) -> Speaker {
        let writer = Arc::new(Mutex::new(None));
        let progress = Arc::new(Progress::default());
        let (w, p) = (writer.clone(), progress.clone());
        let spawned = std::thread::Builder::new()
            .name("bgp-session".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                if let Err(e) = session(&cfg, &w, &p) {
                    *p.error.lock().unwrap_or_else(PoisonError::into_inner) =
                        Some(format!("{e:#}"));
                }
                p.established.store(false, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            *progress
                .error
                .lock()
                .unwrap_or_else(PoisonError::into_inner) =
                Some(format!("cannot spawn a session thread: {e}"));
        }
        Speaker { writer, progress }
    }

    /// Whether the session is Established.
    pub fn established(&self) -> bool {
        self.progress.established.load(Ordering::SeqCst)
    }

    /// Writes pre-encoded messages (whole messages, in 256 KiB writes so that keepalives can
    /// go between them); returns when the last octet is in the socket.
    pub fn send(&self, data: &[u8]) -> anyhow::Result<()> {
        const CHUNK: usize = 256 * 1024;
        let mut rest = data;
        while !rest.is_empty() {
            // Cut at a message boundary at or before CHUNK.
            let mut cut = 0;
            while cut < rest.len() {
                let Some(&[hi, lo]) = rest.get(cut + 16..cut + 18) else {
                    bail!("truncated message in a pre-encoded stream");
                };
                let len = usize::from(u16::from_be_bytes([hi, lo]));
                if len < bgp_wire::HEADER_LEN || cut + len > rest.len() {
                    bail!("bad length in a pre-encoded stream");
                }
                if cut > 0 && cut + len > CHUNK {
                    break;
                }
                cut += len;
            }
            let mut guard = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let stream = guard
                .as_mut()
                .ok_or_else(|| anyhow!("session not established"))?;
            stream.write_all(&rest[..cut]).context("writing UPDATEs")?;
            drop(guard);
            rest = &rest[cut..];
        }
        Ok(())
    }

    /// A handle the keepalive thread uses.
    pub fn keepalive_handle(&self) -> KeepaliveHandle {
        KeepaliveHandle(self.writer.clone())
    }

    /// Closes the connection (the reader thread then ends).
    pub fn close(&self) {
        let mut guard = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = guard.take() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Sends KEEPALIVEs on a speaker's connection.
#[derive(Clone, Debug)]
pub struct KeepaliveHandle(Arc<Mutex<Option<TcpStream>>>);

impl KeepaliveHandle {
    /// Sends one KEEPALIVE if the session is up.
    pub fn send(&self) {
        let mut out = BytesMut::new();
        encode_keepalive(&mut out);
        let mut guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = guard.as_mut() {
            let _ = s.write_all(&out);
        }
    }
}

/// A thread sending KEEPALIVEs every 30 s on every speaker it was given, until dropped.
#[derive(Debug)]
pub struct Keepalives {
    stop: Arc<AtomicBool>,
}

impl Keepalives {
    /// Starts the thread.
    pub fn start(handles: Vec<KeepaliveHandle>) -> Keepalives {
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let _ = std::thread::Builder::new()
            .name("keepalives".into())
            .spawn(move || {
                let mut last = Instant::now();
                while !st.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(200));
                    if last.elapsed() >= Duration::from_secs(30) {
                        handles.iter().for_each(KeepaliveHandle::send);
                        last = Instant::now();
                    }
                }
            });
        Keepalives { stop }
    }
}

impl Drop for Keepalives {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Drop for Speaker {
    fn drop(&mut self) {
        self.close();
    }
}

fn enter_netns(path: &PathBuf) -> anyhow::Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("setns {}", path.display()))?;
    Ok(())
}

fn open_message(cfg: &SpeakerConfig) -> anyhow::Result<BytesMut> {
    let open = Open {
        my_as: u16::try_from(cfg.asn).unwrap_or(23456),
        hold_time: HOLD_TIME,
        bgp_id: cfg.router_id,
        capabilities: vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(cfg.asn),
        ],
    };
    let mut out = BytesMut::new();
    Message::Open(open)
        .encode(&EncodeContext::default(), &mut out)
        .map_err(|e| anyhow!("encoding OPEN: {e}"))?;
    encode_keepalive(&mut out);
    Ok(out)
}

fn connect_once(cfg: &SpeakerConfig, listener: Option<&TcpListener>) -> anyhow::Result<TcpStream> {
    match (&cfg.connect, listener) {
        (Connect::Active { local, remote }, _) => {
            let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            sock.bind(&SocketAddr::V4(SocketAddrV4::new(*local, 0)).into())?;
            sock.connect_timeout(
                &SocketAddr::V4(SocketAddrV4::new(*remote, 179)).into(),
                Duration::from_secs(2),
            )?;
            Ok(sock.into())
        }
        (Connect::Passive { .. }, Some(l)) => Ok(l.accept()?.0),
        (Connect::Passive { .. }, None) => bail!("passive speaker without a listener"),
    }
}

/// Reads one whole message (blocking), keeping any excess in `buf`.
fn read_message(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    scratch: &mut [u8],
) -> anyhow::Result<bytes::Bytes> {
    loop {
        if let Some(m) =
            next_message(buf, bgp_wire::MAX_MESSAGE_LEN).map_err(|e| anyhow!("framing: {e}"))?
        {
            return Ok(m);
        }
        let n = stream.read(scratch).context("reading")?;
        if n == 0 {
            bail!("connection closed by the peer");
        }
        buf.extend_from_slice(&scratch[..n]);
    }
}

/// OPEN exchange; returns the established stream (OPEN and KEEPALIVE sent, theirs read).
fn handshake(
    cfg: &SpeakerConfig,
    mut stream: TcpStream,
    buf: &mut BytesMut,
    scratch: &mut [u8],
) -> anyhow::Result<(TcpStream, DecodeContext)> {
    stream.set_read_timeout(Some(Duration::from_secs(4)))?;
    stream.write_all(&open_message(cfg)?)?;
    let mut ctx = DecodeContext::default();
    let mut got_open = false;
    loop {
        let m = read_message(&mut stream, buf, scratch)?;
        let d = Message::decode(m, &ctx).map_err(|e| anyhow!("decoding: {e}"))?;
        match d.message {
            Message::Open(o) => {
                ctx.four_octet_as = o.four_octet_as().is_some();
                got_open = true;
            }
            Message::Keepalive if got_open => break,
            Message::Notification(n) => bail!("NOTIFICATION during the OPEN exchange: {n:?}"),
            other => bail!(
                "unexpected {:?} during the OPEN exchange",
                other.message_type()
            ),
        }
    }
    stream.set_read_timeout(None)?;
    Ok((stream, ctx))
}

fn session(
    cfg: &SpeakerConfig,
    writer: &Mutex<Option<TcpStream>>,
    progress: &Progress,
) -> anyhow::Result<()> {
    enter_netns(&cfg.netns)?;
    let listener = match cfg.connect {
        Connect::Passive { local } => Some(
            TcpListener::bind(SocketAddrV4::new(local, 179)).context("listening on port 179")?,
        ),
        Connect::Active { .. } => None,
    };
    let deadline = Instant::now() + CONNECT_DEADLINE;
    let mut scratch = vec![0u8; 256 * 1024];
    let mut buf = BytesMut::with_capacity(512 * 1024);
    let (mut stream, ctx) = loop {
        buf.clear();
        let attempt = connect_once(cfg, listener.as_ref())
            .and_then(|s| handshake(cfg, s, &mut buf, &mut scratch));
        match attempt {
            Ok(x) => break x,
            Err(e) if Instant::now() < deadline => {
                tracing_note(&e);
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(e.context("no session before the deadline")),
        }
    };
    {
        let mut w = writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = stream.try_clone()?;
        if let Some(initial) = &cfg.initial {
            out.write_all(initial)
                .context("writing the initial UPDATEs")?;
        }
        *w = Some(out);
    }
    progress.established_at.store(now_ns(), Ordering::SeqCst);
    progress.established.store(true, Ordering::SeqCst);

    let universe = cfg.universe.clone();
    let mut bits = vec![0u64; (universe.size() as usize).div_ceil(64)];
    let mut held: u64 = 0;
    loop {
        let m = match read_message(&mut stream, &mut buf, &mut scratch) {
            Ok(m) => m,
            // Closed by us (`close`) or by the peer.
            Err(e) => {
                if writer
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_none()
                {
                    return Ok(());
                }
                return Err(e);
            }
        };
        let d = Message::decode(m, &ctx).map_err(|e| anyhow!("decoding: {e}"))?;
        match d.message {
            Message::Update(u) => {
                for n in u.withdrawals() {
                    if let Some(i) = universe.index(&n.prefix) {
                        let (w, b) = (i / 64, 1u64 << (i % 64));
                        if bits[w] & b != 0 {
                            bits[w] &= !b;
                            held -= 1;
                        }
                    }
                }
                for n in u.announced() {
                    match universe.index(&n.prefix) {
                        Some(i) => {
                            let (w, b) = (i / 64, 1u64 << (i % 64));
                            if bits[w] & b == 0 {
                                bits[w] |= b;
                                held += 1;
                            }
                        }
                        None => {
                            progress.unexpected.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                let now = now_ns();
                progress.held.store(held, Ordering::SeqCst);
                progress.last_update_at.store(now, Ordering::Relaxed);
                if held == progress.target.load(Ordering::SeqCst) {
                    let _ = progress.reached_at.compare_exchange(
                        0,
                        now.max(1),
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    );
                }
            }
            Message::Notification(n) => bail!("NOTIFICATION from the DUT: {n:?}"),
            _ => {}
        }
    }
}

fn tracing_note(e: &anyhow::Error) {
    if std::env::var_os("HARNESS_DEBUG").is_some() {
        eprintln!("  session attempt failed: {e:#}");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn universe_indexes_each_block_and_nothing_else() {
        let u = Universe::new(vec![
            Block {
                base: Ipv4Addr::new(32, 0, 0, 0),
                len: 24,
                count: 300,
            },
            Block {
                base: Ipv4Addr::new(100, 64, 0, 0),
                len: 26,
                count: 4,
            },
        ]);
        assert_eq!(u.size(), 304);
        let p = |a: [u8; 4], l: u8| Prefix::v4(Ipv4Addr::from(a), l).unwrap();
        assert_eq!(u.index(&p([32, 0, 0, 0], 24)), Some(0));
        assert_eq!(u.index(&p([32, 0, 1, 0], 24)), Some(1));
        assert_eq!(u.index(&p([32, 1, 43, 0], 24)), Some(299));
        assert_eq!(u.index(&p([32, 1, 44, 0], 24)), None, "past the block");
        assert_eq!(u.index(&p([32, 0, 1, 0], 25)), None, "other length");
        assert_eq!(u.index(&p([100, 64, 0, 192], 26)), Some(303));
        assert_eq!(u.index(&p([100, 64, 1, 0], 26)), None);
        // Every prefix a block produces maps back to its own index.
        let b = Block {
            base: Ipv4Addr::new(32, 0, 0, 0),
            len: 24,
            count: 300,
        };
        for i in 0..300 {
            assert_eq!(u.index(&b.prefix(i).unwrap()), Some(i as usize));
        }
    }

    #[test]
    fn a_target_already_held_counts_as_reached_at_once() {
        let p = Progress::default();
        p.held.store(5, Ordering::SeqCst);
        p.set_target(5);
        assert_ne!(p.reached_at.load(Ordering::SeqCst), 0);
        p.set_target(0);
        assert_eq!(p.reached_at.load(Ordering::SeqCst), 0);
    }
}

//! Relaying bytes both ways between a client and an upstream: CONNECT and
//! SOCKS5 tunnels that nothing decrypts, and HTTP upgrades (WebSocket).
//!
//! Owns: the idle timeout (no byte either way for [`IDLE_TIMEOUT`] closes
//! the relay), the byte counts for the net log, the placeholder watch on
//! client bytes (a tunnel that happens to carry plaintext and shows a
//! placeholder is cut), and how bytes move:
//!
//! - between two plain TCP sockets, a direction nobody inspects moves, once
//!   it proves a bulk transfer (256 KiB), by `splice(2)` through a pipe,
//!   so the bytes never enter this process (the kernel hands pages from
//!   one socket to the other);
//! - a watched direction, or any stream that is not a bare socket (TLS,
//!   hyper's upgraded connections), is copied through a buffer that grows
//!   while reads fill it; between sockets it is allocated only once the
//!   first byte is there (an idle tunnel holds no buffer).
//!
//! `splice` needs no `unsafe` here: rustix wraps the system call safely
//! over borrowed descriptors.

use std::future::Future;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::TcpStream;

use super::secrets::{Forbidden, Scanner};

/// A relay with no bytes either way for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Copy buffers start at this size and double while reads fill them.
const BUF_MIN: usize = 4 * 1024;
const BUF_MAX: usize = 64 * 1024;
/// Most bytes moved per `splice` call, and the pipe size asked for.
const SPLICE_MAX: usize = 1 << 20;
const PIPE_SIZE: usize = 1 << 20;
/// A direction moves by `splice` once it has carried this much.
const SPLICE_AFTER: u64 = 256 * 1024;

/// How a relay ended.
#[derive(Debug)]
pub enum End {
    /// Both sides closed (each direction saw EOF and passed it on).
    Closed,
    /// No byte either way for the idle timeout.
    Idle,
    /// A placeholder crossed a watched direction; the relay was cut there.
    Forbidden(Forbidden),
    /// A read, write or splice failed (a reset, a broken pipe).
    Failed(io::Error),
}

impl End {
    /// The net-log reason of an allowed relay that ended this way (a
    /// placeholder is a refusal: the caller logs it as a denial).
    pub fn reason(&self) -> Option<String> {
        match self {
            End::Closed => None,
            End::Idle => Some("idle-timeout".into()),
            End::Forbidden(f) => Some(format!("refused: {f}")),
            End::Failed(e) => Some(format!("relay: {e}")),
        }
    }
}

/// What a relay did, for the net log.
#[derive(Debug)]
pub struct Relayed {
    /// Bytes client → upstream, and upstream → client, that were delivered.
    pub up: u64,
    pub down: u64,
    pub end: End,
    /// How many directions moved by `splice` (0, 1 or 2): tests use it to
    /// prove the fast path is taken.
    #[cfg_attr(not(test), allow(dead_code))]
    pub spliced: u8,
}

/// When the last byte moved, shared by both directions.
struct Clock {
    start: Instant,
    last_ms: AtomicU64,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
    fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    fn idle_for(&self) -> Duration {
        Duration::from_millis(
            (self.start.elapsed().as_millis() as u64)
                .saturating_sub(self.last_ms.load(Ordering::Relaxed)),
        )
    }
}

/// Run both directions until both end, one fails, a placeholder is seen,
/// or nothing moves for `idle`.
///
/// Takes the directions pinned by the caller: moved in by value, they were
/// stored twice in the relay's future (the parameters and their pinned
/// copies), ≈ 1.3 KiB more in every held tunnel.
async fn drive<Up, Down>(
    mut up: Pin<&mut Up>,
    mut down: Pin<&mut Down>,
    clock: &Clock,
    idle: Duration,
) -> End
where
    Up: Future<Output = io::Result<Option<Forbidden>>>,
    Down: Future<Output = io::Result<()>>,
{
    let mut up_done = false;
    let mut down_done = false;
    loop {
        let idle_for = clock.idle_for();
        if idle_for >= idle {
            return End::Idle;
        }
        tokio::select! {
            r = up.as_mut(), if !up_done => {
                up_done = true;
                match r {
                    Ok(Some(f)) => return End::Forbidden(f),
                    Ok(None) => {}
                    Err(e) => return End::Failed(e),
                }
            }
            r = down.as_mut(), if !down_done => {
                down_done = true;
                if let Err(e) = r {
                    return End::Failed(e);
                }
            }
            _ = tokio::time::sleep(idle - idle_for) => {}
        }
        if up_done && down_done {
            return End::Closed;
        }
    }
}

/// Relay between any two streams (TLS, upgraded connections), copying.
/// `watch` scans client → upstream bytes for placeholders.
pub async fn relay<C, U>(client: C, upstream: U, watch: Option<Scanner>, idle: Duration) -> Relayed
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (up_n, down_n) = (AtomicU64::new(0), AtomicU64::new(0));
    let clock = Clock::new();
    let (cr, cw) = tokio::io::split(client);
    let (ur, uw) = tokio::io::split(upstream);
    let up = copy(cr, uw, watch, &up_n, &clock);
    let down = async {
        copy(ur, cw, None, &down_n, &clock).await?;
        Ok(())
    };
    tokio::pin!(up, down);
    let end = drive(up, down, &clock, idle).await;
    Relayed {
        up: up_n.load(Ordering::Relaxed),
        down: down_n.load(Ordering::Relaxed),
        end,
        spliced: 0,
    }
}

/// Relay between two TCP sockets. `pre` are client bytes already read
/// (hyper's buffer after a CONNECT head): they go upstream first, watched
/// like the rest. Directions nobody watches move by `splice(2)`; if no
/// pipe can be had (descriptor limit), they are copied instead.
pub async fn relay_tcp(
    client: TcpStream,
    pre: Bytes,
    upstream: TcpStream,
    mut watch: Option<Scanner>,
    idle: Duration,
) -> Relayed {
    let (up_n, down_n) = (AtomicU64::new(0), AtomicU64::new(0));
    let clock = Clock::new();
    if !pre.is_empty() {
        if let Some(w) = &mut watch {
            if let Err(f) = w.detect(&pre) {
                return Relayed {
                    up: 0,
                    down: 0,
                    end: End::Forbidden(f),
                    spliced: 0,
                };
            }
        }
        if let Err(e) = write_all(&upstream, &pre).await {
            return Relayed {
                up: 0,
                down: 0,
                end: End::Failed(e),
                spliced: 0,
            };
        }
        up_n.fetch_add(pre.len() as u64, Ordering::Relaxed);
    }
    let spliced = AtomicU8::new(0);
    let (c, u) = (&client, &upstream);
    let up = async {
        if watch.is_some() {
            return match copy_tcp(c, u, watch, &up_n, &clock, None).await? {
                Copied::Forbidden(f) => Ok(Some(f)),
                Copied::Eof | Copied::Bulk => Ok(None),
            };
        }
        bulk(c, u, &up_n, &clock, &spliced).await.map(|()| None)
    };
    let down = bulk(u, c, &down_n, &clock, &spliced);
    tokio::pin!(up, down);
    let end = drive(up, down, &clock, idle).await;
    Relayed {
        up: up_n.load(Ordering::Relaxed),
        down: down_n.load(Ordering::Relaxed),
        end,
        spliced: spliced.load(Ordering::Relaxed),
    }
}

/// An unwatched direction between sockets: copied until it has moved
/// [`SPLICE_AFTER`] bytes, then, if a pipe can be had, spliced. Interactive
/// and idle tunnels (most of them) never hold a pipe: pipe capacity is
/// counted per user (`/proc/sys/fs/pipe-user-pages-soft`: past it, every
/// new pipe of the user's, the command's and other programs' alike, gets
/// two pages), so only bulk transfers take one, for as long as they last.
async fn bulk(
    from: &TcpStream,
    to: &TcpStream,
    count: &AtomicU64,
    clock: &Clock,
    spliced: &AtomicU8,
) -> io::Result<()> {
    if let Copied::Eof | Copied::Forbidden(_) =
        copy_tcp(from, to, None, count, clock, Some(SPLICE_AFTER)).await?
    {
        return Ok(());
    }
    match pipe() {
        Some(p) => {
            spliced.fetch_add(1, Ordering::Relaxed);
            // Boxed: only bulk transfers pay for this state (a thousand
            // held tunnels carry each relay's future).
            Box::pin(splice_dir(from, to, p, count, clock)).await
        }
        None => copy_tcp(from, to, None, count, clock, None)
            .await
            .map(|_| ()),
    }
}

/// A non-blocking pipe for one spliced direction, as large as the system
/// lets an unprivileged user make one (`fs/pipe-max-size`, 1 MiB by
/// default): at 64 KiB the splices were too small to beat copying here.
/// `None` (then the direction is copied) if no pipe can be had.
fn pipe() -> Option<(OwnedFd, OwnedFd)> {
    use rustix::pipe::{fcntl_setpipe_size, pipe_with, PipeFlags};
    let p = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK).ok()?;
    // Refused past the user's soft limit: the pipe keeps its size.
    let _ = fcntl_setpipe_size(&p.1, PIPE_SIZE);
    Some(p)
}

/// `from` → `to` through the pipe: socket → pipe, then pipe → socket,
/// each step waiting on tokio's readiness for the socket it touches. The
/// pipe is only filled when empty, so a `WouldBlock` always comes from the
/// socket (and clears that socket's readiness, as tokio requires).
async fn splice_dir(
    from: &TcpStream,
    to: &TcpStream,
    (pipe_r, pipe_w): (OwnedFd, OwnedFd),
    count: &AtomicU64,
    clock: &Clock,
) -> io::Result<()> {
    use rustix::pipe::{splice, SpliceFlags};
    let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
    loop {
        let mut in_pipe = loop {
            from.readable().await?;
            match from.try_io(Interest::READABLE, || {
                splice(from.as_fd(), None, &pipe_w, None, SPLICE_MAX, flags)
                    .map_err(io::Error::from)
            }) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        };
        clock.touch();
        if in_pipe == 0 {
            let _ = rustix::net::shutdown(to, rustix::net::Shutdown::Write);
            return Ok(());
        }
        while in_pipe > 0 {
            to.writable().await?;
            match to.try_io(Interest::WRITABLE, || {
                splice(&pipe_r, None, to.as_fd(), None, in_pipe, flags).map_err(io::Error::from)
            }) {
                Ok(n) => {
                    in_pipe -= n;
                    count.fetch_add(n as u64, Ordering::Relaxed);
                    clock.touch();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// The buffer of a copying direction: none until the first byte, then
/// [`BUF_MIN`], doubling while reads fill it, up to [`BUF_MAX`].
struct Buf(Vec<u8>);

impl Buf {
    fn get(&mut self) -> &mut [u8] {
        if self.0.is_empty() {
            self.0 = vec![0; BUF_MIN];
        }
        &mut self.0
    }
    fn filled(&mut self, n: usize) {
        if n == self.0.len() && n < BUF_MAX {
            self.0.resize(n * 2, 0);
        }
    }
}

/// Check `chunk` with the watch, if any.
fn check(watch: &mut Option<Scanner>, chunk: &[u8]) -> Result<(), Forbidden> {
    match watch {
        Some(w) => w.detect(chunk),
        None => Ok(()),
    }
}

/// Copy `r` → `w` for any streams. Returns the refusal if the watch saw a
/// placeholder (the bytes holding it are not passed on).
async fn copy<R, W>(
    mut r: R,
    mut w: W,
    mut watch: Option<Scanner>,
    count: &AtomicU64,
    clock: &Clock,
) -> io::Result<Option<Forbidden>>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // No readiness to wait on for a generic stream: the buffer is taken
    // at once (upgrades are few; tunnels go through `copy_tcp`).
    let mut buf = Buf(Vec::new());
    loop {
        let n = r.read(buf.get()).await?;
        clock.touch();
        if n == 0 {
            let _ = w.shutdown().await;
            return Ok(None);
        }
        if let Err(f) = check(&mut watch, &buf.0[..n]) {
            return Ok(Some(f));
        }
        w.write_all(&buf.0[..n]).await?;
        count.fetch_add(n as u64, Ordering::Relaxed);
        clock.touch();
        buf.filled(n);
    }
}

/// Write all of `data` to a shared socket.
async fn write_all(to: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        to.writable().await?;
        match to.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// How a copying direction between sockets stopped.
enum Copied {
    /// EOF, passed on.
    Eof,
    /// The watch saw a placeholder.
    Forbidden(Forbidden),
    /// It carried the `until` bytes asked for: a bulk transfer.
    Bulk,
}

/// Copy between two shared sockets, the buffer taken only once the socket
/// is readable, until EOF, a placeholder, or (with `until`) that many
/// bytes have been carried.
async fn copy_tcp(
    from: &TcpStream,
    to: &TcpStream,
    mut watch: Option<Scanner>,
    count: &AtomicU64,
    clock: &Clock,
    until: Option<u64>,
) -> io::Result<Copied> {
    let mut buf = Buf(Vec::new());
    loop {
        if until.is_some_and(|u| count.load(Ordering::Relaxed) >= u) {
            return Ok(Copied::Bulk);
        }
        from.readable().await?;
        let n = match from.try_read(buf.get()) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        clock.touch();
        if n == 0 {
            let _ = rustix::net::shutdown(to, rustix::net::Shutdown::Write);
            return Ok(Copied::Eof);
        }
        if let Err(f) = check(&mut watch, &buf.0[..n]) {
            return Ok(Copied::Forbidden(f));
        }
        write_all(to, &buf.0[..n]).await?;
        count.fetch_add(n as u64, Ordering::Relaxed);
        clock.touch();
        buf.filled(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::net::TcpListener;

    /// A connected pair of loopback sockets.
    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    /// client_app ⇄ [client | relay | upstream] ⇄ server_app.
    async fn tcp_relay(
        watch: Option<Scanner>,
        idle: Duration,
    ) -> (TcpStream, TcpStream, tokio::task::JoinHandle<Relayed>) {
        let (client_app, client) = pair().await;
        let (upstream, server_app) = pair().await;
        let h = tokio::spawn(relay_tcp(client, Bytes::new(), upstream, watch, idle));
        (client_app, server_app, h)
    }

    #[tokio::test]
    async fn splice_tunnel_counts_bytes_both_ways_and_passes_eof() {
        let (mut c, mut s, h) = tcp_relay(None, IDLE_TIMEOUT).await;
        let up: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        let down = vec![7u8; 1_000_003];
        let up2 = up.clone();
        let w = tokio::spawn(async move {
            c.write_all(&up2).await.unwrap();
            c.shutdown().await.unwrap();
            let mut got = Vec::new();
            c.read_to_end(&mut got).await.unwrap();
            got
        });
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, up);
        s.write_all(&down).await.unwrap();
        s.shutdown().await.unwrap();
        assert_eq!(w.await.unwrap(), down);
        let r = h.await.unwrap();
        assert_eq!(r.spliced, 2, "both directions spliced");
        assert_eq!((r.up, r.down), (300_000, 1_000_003));
        assert!(matches!(r.end, End::Closed), "{:?}", r.end);
    }

    #[tokio::test]
    async fn splice_tunnel_enforces_the_idle_timeout() {
        let idle = Duration::from_millis(300);
        let (mut c, mut s, h) = tcp_relay(None, idle).await;
        // A bulk transfer each way first, so both directions splice.
        let big = vec![3u8; 600_000];
        let (mut got_s, mut got_c) = (vec![0u8; big.len()], vec![0u8; big.len()]);
        let (r1, r2) = tokio::join!(
            async {
                c.write_all(&big).await.unwrap();
                c.read_exact(&mut got_c).await.unwrap();
            },
            async {
                s.read_exact(&mut got_s).await.unwrap();
                s.write_all(&big).await.unwrap();
            }
        );
        let _ = (r1, r2);
        assert!(got_s == big && got_c == big);
        // Traffic keeps it open past the timeout…
        for _ in 0..4 {
            c.write_all(b"ping").await.unwrap();
            let mut b = [0u8; 4];
            s.read_exact(&mut b).await.unwrap();
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        assert!(!h.is_finished(), "closed while traffic flowed");
        // …silence closes it, and both ends see the close.
        let r = tokio::time::timeout(Duration::from_secs(5), h)
            .await
            .expect("idle tunnel not closed")
            .unwrap();
        assert!(matches!(r.end, End::Idle), "{:?}", r.end);
        assert_eq!(r.spliced, 2, "both directions spliced");
        assert_eq!((r.up, r.down), (600_016, 600_000));
        let mut rest = Vec::new();
        assert_eq!(s.read_to_end(&mut rest).await.unwrap_or(0), 0);
        assert_eq!(c.read_to_end(&mut rest).await.unwrap_or(0), 0);
    }

    fn watch() -> (Scanner, String) {
        let s = Arc::new(
            super::super::Secret::from_value("K", "real-value-123".into(), vec!["a.test".into()])
                .unwrap(),
        );
        let p = s.placeholder().to_string();
        (Scanner::forbid_all(&[s]), p)
    }

    #[tokio::test]
    async fn watched_direction_is_copied_and_cut_on_a_split_placeholder() {
        let (w, placeholder) = watch();
        let (mut c, mut s, h) = tcp_relay(Some(w), IDLE_TIMEOUT).await;
        // The placeholder arrives in two reads, the cut mid-way.
        let (a, b) = placeholder.as_bytes().split_at(placeholder.len() / 2);
        c.write_all(b"GET / HTTP/1.1\r\nx: ").await.unwrap();
        c.write_all(a).await.unwrap();
        let mut seen = vec![0u8; 19 + a.len()];
        s.read_exact(&mut seen).await.unwrap();
        c.write_all(b).await.unwrap();
        let r = tokio::time::timeout(Duration::from_secs(5), h)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(r.end, End::Forbidden(_)), "{:?}", r.end);
        assert_eq!(r.spliced, 0, "nothing bulk moved downstream");
        // The whole placeholder never reached the upstream.
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
        seen.extend_from_slice(&rest);
        assert!(!String::from_utf8_lossy(&seen).contains(&placeholder));
    }

    #[tokio::test]
    async fn copying_relay_counts_and_times_out() {
        let (mut c, client) = pair().await;
        let (upstream, mut s) = pair().await;
        let h = tokio::spawn(relay(client, upstream, None, Duration::from_millis(300)));
        c.write_all(b"hello").await.unwrap();
        let mut b = [0u8; 5];
        s.read_exact(&mut b).await.unwrap();
        s.write_all(b"world!").await.unwrap();
        let mut b = [0u8; 6];
        c.read_exact(&mut b).await.unwrap();
        let r = tokio::time::timeout(Duration::from_secs(5), h)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(r.end, End::Idle), "{:?}", r.end);
        assert_eq!((r.up, r.down, r.spliced), (5, 6, 0));
    }
}

//! Fewer wake-ups for the RTSP thread: a low-water mark (`SO_RCVLOWAT`) on a camera's
//! interleaved TCP connection.
//!
//! A camera sends each frame as a burst of RTP packets. Without a mark the RTSP thread wakes for
//! each part of a burst the kernel has queued, reads it, and pays for the TCP ACK its read
//! releases; at one 4 Mbit/s stream that was about 60 % of the thread's time. With a mark of
//! about [`MARK_MS`] of the stream, the kernel wakes the thread once that much has gathered, and
//! the thread reads it all in one go (BENCHMARKS.md, issue 10).
//!
//! Data below the mark waits in the kernel until more arrives. So when a camera goes quiet for
//! [`QUIET`], the mark is dropped to one byte ([`Mark::quiet`]; the kernel then wakes the reader
//! at once): the last frames before a camera dies are recorded, not left in the socket. The mark
//! is only for TCP: over UDP the RTSP connection carries nothing but the answers to keepalives,
//! which must not wait.
//!
//! retina opens the connection itself and does not hand out its socket, so [`opened_by`] finds
//! it: it looks at this process's sockets to the camera just before and just after each poll of
//! the future that connects. The RTSP runtime has one thread, so a socket that appears during
//! that poll was opened by it; sockets are told apart by inode, so a descriptor number that
//! another session freed meanwhile is not mistaken for it. Two camera entries that point at the
//! same camera (a main and a sub stream) each find their own socket.

#![allow(unsafe_code)]

use std::net::{IpAddr, SocketAddr};
use std::os::fd::RawFd;
use std::pin::pin;
use std::time::Duration;

/// The mark, in milliseconds of the camera's stream.
pub const MARK_MS: u64 = 50;
/// A session with no frame for this long drops its mark, so that nothing waits in the kernel.
pub const QUIET: Duration = Duration::from_millis(200);
/// Bounds on the mark in bytes: below the lower a mark saves little; above the upper a
/// keyframe's tail would wait long for the next frame.
const MIN_BYTES: u64 = 4096;
const MAX_BYTES: u64 = 64 * 1024;
/// The stream's rate is measured over this long before the first mark, then over
/// [`RATE_WINDOW_NS`] at a time.
const FIRST_WINDOW_NS: u64 = 1_000_000_000;
const RATE_WINDOW_NS: u64 = 10_000_000_000;

/// One session's mark: measures the stream's rate and keeps the mark on the session's socket.
/// Frames and quiet spells drive it; it makes a system call only when the mark changes.
#[derive(Debug)]
pub struct Mark {
    fd: Option<RawFd>,
    /// The mark the socket has now (1: none).
    on_socket: u64,
    /// The mark the stream's rate calls for (0: not measured yet).
    wanted: u64,
    window_start: Option<u64>,
    window_bytes: u64,
    window_ns: u64,
}

impl Mark {
    /// A mark for the session reading socket `fd` (none: nothing to do). The socket must stay
    /// open while the mark is used: the session that owns it owns the mark too.
    pub fn new(fd: Option<RawFd>) -> Mark {
        Mark {
            fd,
            on_socket: 1,
            wanted: 0,
            window_start: None,
            window_bytes: 0,
            window_ns: FIRST_WINDOW_NS,
        }
    }

    /// A frame of `len` bytes arrived at `now_ns` (monotonic).
    pub fn frame(&mut self, now_ns: u64, len: usize) {
        let start = *self.window_start.get_or_insert(now_ns);
        self.window_bytes += len as u64;
        let elapsed = now_ns.saturating_sub(start);
        if elapsed >= self.window_ns {
            let rate = self.window_bytes * 1_000_000_000 / elapsed.max(1);
            self.wanted = mark_for(rate);
            self.window_start = Some(now_ns);
            self.window_bytes = 0;
            self.window_ns = RATE_WINDOW_NS;
        }
        // Back from quiet, or the rate moved by more than a quarter.
        let (have, want) = (self.on_socket, self.wanted);
        if want > 0 && (have == 1 || have.abs_diff(want) * 4 > have) {
            self.apply(want);
        }
    }

    /// No frame for [`QUIET`]: whatever waits below the mark is read now.
    pub fn quiet(&mut self) {
        if self.on_socket > 1 {
            self.apply(1);
        }
    }

    /// Whether there is a socket to mark.
    pub fn has_socket(&self) -> bool {
        self.fd.is_some()
    }

    /// Whether a mark is on the socket (so a quiet spell has something to undo).
    pub fn is_set(&self) -> bool {
        self.on_socket > 1
    }

    fn apply(&mut self, bytes: u64) {
        let Some(fd) = self.fd else { return };
        if set(fd, bytes) {
            self.on_socket = bytes;
        } else {
            tracing::debug!(fd, bytes, error = %std::io::Error::last_os_error(), "SO_RCVLOWAT refused; reading without a mark");
            self.fd = None;
            self.on_socket = 1;
            self.wanted = 0;
        }
    }
}

/// The mark for a stream of `bytes_per_sec`.
pub fn mark_for(bytes_per_sec: u64) -> u64 {
    (bytes_per_sec * MARK_MS / 1000).clamp(MIN_BYTES, MAX_BYTES)
}

/// Runs `connect` (a future that opens one TCP connection to one of `peers`), and finds the
/// socket it opened: the one that appeared during one of its polls.
pub async fn opened_by<F: Future>(peers: &[SocketAddr], connect: F) -> (F::Output, Option<RawFd>) {
    let mut connect = pin!(connect);
    let mut found = None;
    let out = std::future::poll_fn(|cx| {
        if found.is_some() || peers.is_empty() {
            return connect.as_mut().poll(cx);
        }
        let before = sockets_to(peers);
        let out = connect.as_mut().poll(cx);
        let mut new = sockets_to(peers)
            .into_iter()
            .filter(|s| !before.contains(s));
        if let (Some((fd, _)), None) = (new.next(), new.next()) {
            found = Some(fd);
        }
        out
    })
    .await;
    (out, found)
}

/// The TCP sockets of this process connected to one of `peers`: descriptor and inode.
fn sockets_to(peers: &[SocketAddr]) -> Vec<(RawFd, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in dir.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<RawFd>().ok())
        else {
            continue;
        };
        // "socket:[INODE]"
        let Some(inode) = std::fs::read_link(entry.path()).ok().and_then(|t| {
            t.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse::<u64>()
                .ok()
        }) else {
            continue;
        };
        if is_tcp(fd) && peer_of(fd).is_some_and(|p| peers.contains(&p)) {
            found.push((fd, inode));
        }
    }
    found
}

/// Runs `f` on descriptor `fd` of this process, borrowed for the call.
fn with_fd<T>(fd: RawFd, f: impl FnOnce(std::os::fd::BorrowedFd<'_>) -> T) -> T {
    // SAFETY: the borrow lasts only for `f`. The descriptor was listed in /proc/self/fd; if
    // another thread closed it meanwhile, or it was reused, the calls made with it (getsockopt,
    // getpeername, setsockopt: none reads or writes data, none closes) fail or answer for
    // another socket, which the callers tolerate (sockets are matched by inode and peer).
    f(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) })
}

fn is_tcp(fd: RawFd) -> bool {
    with_fd(fd, |b| {
        rustix::net::sockopt::socket_type(b).is_ok_and(|t| t == rustix::net::SocketType::STREAM)
    })
}

fn peer_of(fd: RawFd) -> Option<SocketAddr> {
    let addr = with_fd(fd, |b| rustix::net::getpeername(b)).ok()??;
    let a = SocketAddr::try_from(addr).ok()?;
    // A v4 camera reached over a dual-stack socket shows as ::ffff:a.b.c.d.
    Some(match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => a,
        },
        SocketAddr::V4(_) => a,
    })
}

/// Sets the low-water mark of socket `fd`; false if the kernel refused. (rustix has no
/// wrapper for SO_RCVLOWAT: this is the module's one raw call.)
fn set(fd: RawFd, bytes: u64) -> bool {
    let v = bytes.clamp(1, MAX_BYTES) as libc::c_int;
    // SAFETY: v lives across the call and its size is given; a closed or reused fd only makes
    // the call fail or set another socket's mark. Linux wakes a reader that the new mark
    // satisfies (tcp_set_rcvlowat), which is what `Mark::quiet` relies on.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&raw const v).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[test]
    fn mark_is_fifty_ms_of_the_stream_within_bounds() {
        assert_eq!(mark_for(500_000), 25_000); // 4 Mbit/s
        assert_eq!(mark_for(10_000), MIN_BYTES); // a quiet night-time substream
        assert_eq!(mark_for(5_000_000), MAX_BYTES); // 40 Mbit/s
    }

    /// On real sockets: the connection's socket is found among others to the same camera, data
    /// below the mark does not wake the reader, and dropping the mark (a quiet camera) does, at
    /// once.
    #[tokio::test]
    async fn tail_below_the_mark_waits_until_quiet_drops_it() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let camera = listener.local_addr().unwrap();
        // Another session's connection to the same camera, open already.
        let _other = tokio::net::TcpStream::connect(camera).await.unwrap();
        let (client, fd) = opened_by(&[camera], tokio::net::TcpStream::connect(camera)).await;
        let mut client = client.unwrap();
        assert_eq!(fd, Some(client.as_raw_fd()));
        let _first = listener.accept().await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        assert_eq!(server.peer_addr().unwrap(), client.local_addr().unwrap());

        let mut mark = Mark::new(fd);
        // Two windows of a 4 Mbit/s stream: the socket is marked.
        mark.frame(0, 20_000);
        assert!(!mark.is_set(), "marked before the rate was measured");
        mark.frame(FIRST_WINDOW_NS, 480_000);
        assert!(mark.is_set());

        let mut buf = [0u8; 1000];
        server.write_all(&[7; 1000]).await.unwrap();
        let early = tokio::time::timeout(Duration::from_millis(300), client.read(&mut buf)).await;
        assert!(
            early.is_err(),
            "1000 bytes below a 25000-byte mark woke the reader"
        );

        mark.quiet();
        assert!(!mark.is_set());
        let n = tokio::time::timeout(Duration::from_millis(300), client.read(&mut buf))
            .await
            .expect("dropping the mark wakes the reader")
            .unwrap();
        assert_eq!(n, 1000);

        // The next frame puts the mark back.
        mark.frame(FIRST_WINDOW_NS + 40_000_000, 20_000);
        assert!(mark.is_set());
    }
}

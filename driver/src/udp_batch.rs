//! The session's UDP socket moved in batches: many datagrams per system call.
//!
//! A uTP transfer at loopback speed is a quarter of a million 1,420-byte datagrams a second
//! each way, and one `sendto` or `recvfrom` per datagram cost more CPU than the transfer's
//! own work (RESULTS, "uTP over loopback: batched system calls"). Linux offers two batches
//! that keep every datagram's boundaries:
//!
//! - **Sending, UDP GSO** (`UDP_SEGMENT`, Linux 4.18): one `sendmsg` hands the kernel a run
//!   of equal-size datagrams to one address (the last may be shorter), which it cuts apart
//!   as late as it can — on loopback not at all, when the receiver asked for GRO.
//! - **Receiving, UDP GRO** (`UDP_GRO`, Linux 5.0): the kernel may hand such a run over as
//!   one buffer of segments of one size (`stride`), with a control message saying so.
//!   Runs from senders without GSO arrive one datagram per read, as before.
//!
//! Where either is missing (another OS, an old kernel, a route whose device cannot take
//! the segment size), datagrams go one per call as before: batching changes only how many
//! system calls move them, never what arrives. Datagrams that find the socket's send buffer
//! full are dropped, as a full router queue drops them (uTP, the DHT and UDP trackers all
//! retransmit).

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd};

use bytes::Bytes;

/// The most datagrams one GSO send carries: the kernel's `UDP_MAX_SEGMENTS`.
const MAX_SEGMENTS: usize = 64;

/// The most payload one GSO send carries: a run is one IP packet to the kernel until it is
/// cut, so it must stay under IPv4's 65,535-byte limit with its 28 bytes of headers (IPv6's
/// limit is larger; one figure for both).
const MAX_RUN_BYTES: usize = 65_000;

/// The environment variable that turns batching off (`UNCHOKE_UDP_OFFLOAD=off`): one
/// datagram per system call each way, as before batching. For a kernel, VPN or firewall
/// that mishandles segmentation offload, and for measuring what batching gains.
pub const OFFLOAD_ENV: &str = "UNCHOKE_UDP_OFFLOAD";

/// Whether batching is on: unless [`OFFLOAD_ENV`] says `off` (or `0`).
pub fn offload_wanted() -> bool {
    !matches!(std::env::var(OFFLOAD_ENV).as_deref(), Ok("off" | "0"))
}

/// The receive buffer: one GRO run of up to 64 segments as large as any datagram can be.
pub const RECEIVE_BUFFER: usize = 65_536;

/// Datagrams queued for the session's UDP socket during one round of actions, sent at its
/// end in as few system calls as the kernel allows.
#[derive(Debug)]
pub struct DatagramSender {
    queue: Vec<(SocketAddr, Bytes)>,
    /// Whether GSO sends are tried; cleared for good when the kernel refuses the option
    /// itself (not merely one segment size on one route).
    gso: bool,
    counts: SendCounts,
}

/// What a [`DatagramSender`] has done since it was made, for benchmarks and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendCounts {
    /// Datagrams handed to the kernel.
    pub datagrams: u64,
    /// System calls that carried them.
    pub calls: u64,
    /// Datagrams dropped because the socket's send buffer was full or the send failed.
    pub dropped: u64,
}

impl Default for DatagramSender {
    fn default() -> Self {
        Self::new()
    }
}

impl DatagramSender {
    /// The sender the drivers use: batched unless [`offload_wanted`] says otherwise.
    pub fn for_session() -> Self {
        if offload_wanted() {
            Self::new()
        } else {
            Self::unbatched()
        }
    }

    /// An empty queue; GSO is tried on Linux.
    pub fn new() -> Self {
        Self {
            queue: Vec::new(),
            gso: cfg!(target_os = "linux"),
            counts: SendCounts::default(),
        }
    }

    /// A sender that never batches (one datagram per system call): the comparison in
    /// benchmarks and tests.
    pub fn unbatched() -> Self {
        Self {
            gso: false,
            ..Self::new()
        }
    }

    /// Queues `bytes` for `to` (already in the socket's address family; see
    /// `datagram_destination`).
    pub fn push(&mut self, to: SocketAddr, bytes: Bytes) {
        self.queue.push((to, bytes));
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// What this sender has done so far.
    pub fn counts(&self) -> SendCounts {
        self.counts
    }

    /// Sends everything queued, in order, and empties the queue. Consecutive datagrams to
    /// one address of one size (the last of a run may be shorter) go as one GSO send.
    /// Once the socket's buffer is full the rest of the queue is dropped: the next send
    /// would find it full too.
    pub fn flush<S: AsFd>(&mut self, socket: &S) {
        let queue = std::mem::take(&mut self.queue);
        let mut start = 0;
        while start < queue.len() {
            let end = if self.gso {
                run_end(&queue, start)
            } else {
                start + 1
            };
            match self.send_run(socket, &queue[start..end]) {
                Ok(()) => start = end,
                Err(_) => {
                    // Full (the run counted what it lost): so is every later send.
                    self.counts.dropped += (queue.len() - end) as u64;
                    break;
                }
            }
        }
        // The allocation is kept for the next round.
        self.queue = queue;
        self.queue.clear();
    }

    /// Sends one run: a single datagram plainly, several as one GSO send, falling back to
    /// one call each when the kernel refuses the GSO send. `WouldBlock` when the socket's
    /// buffer filled, the run's losses counted.
    fn send_run<S: AsFd>(&mut self, socket: &S, run: &[(SocketAddr, Bytes)]) -> io::Result<()> {
        let to = run[0].0;
        if run.len() > 1 {
            match send_segments(socket, to, run) {
                Ok(()) => {
                    self.counts.calls += 1;
                    self.counts.datagrams += run.len() as u64;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.counts.dropped += run.len() as u64;
                    return Err(e);
                }
                Err(e) => {
                    // EIO: the device cannot checksum segments; ENOPROTOOPT/EOPNOTSUPP: the
                    // kernel has no UDP GSO. Both hold for every later run. Anything else
                    // (EINVAL: this route's MTU is under the segment size; an unreachable
                    // address) is this run's: it goes one datagram at a time.
                    let unusable = [
                        nix::libc::EIO,
                        nix::libc::ENOPROTOOPT,
                        nix::libc::EOPNOTSUPP,
                    ];
                    if e.raw_os_error()
                        .is_some_and(|code| unusable.contains(&code))
                    {
                        self.gso = false;
                    }
                }
            }
        }
        for (i, (_, bytes)) in run.iter().enumerate() {
            self.counts.calls += 1;
            match send_one(socket, to, bytes) {
                Ok(()) => self.counts.datagrams += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.counts.dropped += (run.len() - i) as u64;
                    return Err(e);
                }
                // Refused (e.g. an unreachable address): lost, as the network may lose it.
                Err(_) => self.counts.dropped += 1,
            }
        }
        Ok(())
    }
}

/// Where the GSO run starting at `start` ends: the same address, every datagram the
/// first's size except possibly a shorter last one, within the kernel's limits.
fn run_end(queue: &[(SocketAddr, Bytes)], start: usize) -> usize {
    let (to, first) = &queue[start];
    let segment = first.len();
    let mut total = segment;
    let mut end = start + 1;
    // An empty datagram cannot be a segment size.
    if segment == 0 {
        return end;
    }
    while end < queue.len() && end - start < MAX_SEGMENTS {
        let (next_to, next) = &queue[end];
        if next_to != to || next.len() > segment || total + next.len() > MAX_RUN_BYTES {
            break;
        }
        if next.is_empty() {
            break;
        }
        total += next.len();
        end += 1;
        // A shorter datagram can only end a run.
        if next.len() < segment {
            break;
        }
    }
    end
}

fn sockaddr(to: SocketAddr) -> nix::sys::socket::SockaddrStorage {
    nix::sys::socket::SockaddrStorage::from(to)
}

fn send_one<S: AsFd>(socket: &S, to: SocketAddr, bytes: &[u8]) -> io::Result<()> {
    use nix::sys::socket::{MsgFlags, sendmsg};
    let iov = [IoSlice::new(bytes)];
    let fd = socket.as_fd().as_raw_fd();
    sendmsg(fd, &iov, &[], MsgFlags::empty(), Some(&sockaddr(to)))?;
    Ok(())
}

#[cfg(target_os = "linux")]
fn send_segments<S: AsFd>(
    socket: &S,
    to: SocketAddr,
    run: &[(SocketAddr, Bytes)],
) -> io::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    // Each datagram is its own slice: the kernel gathers them and cuts the whole at
    // `segment` bytes, so the slices need no copy into one buffer.
    let iov: Vec<IoSlice<'_>> = run.iter().map(|(_, b)| IoSlice::new(b)).collect();
    let segment = u16::try_from(run[0].1.len())
        .map_err(|_| io::Error::from_raw_os_error(nix::libc::EINVAL))?;
    let cmsgs = [ControlMessage::UdpGsoSegments(&segment)];
    let fd = socket.as_fd().as_raw_fd();
    sendmsg(fd, &iov, &cmsgs, MsgFlags::empty(), Some(&sockaddr(to)))?;
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn send_segments<S: AsFd>(
    _socket: &S,
    _to: SocketAddr,
    _run: &[(SocketAddr, Bytes)],
) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Asks the kernel to hand runs of datagrams over as one buffer (UDP GRO); reads then go
/// through [`DatagramReceiver`]. Returns whether the kernel agreed (false on other systems
/// and old kernels, where each datagram still arrives on its own).
pub fn enable_receive_offload<S: AsFd>(socket: &S) -> bool {
    #[cfg(target_os = "linux")]
    {
        nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::UdpGroSegment, &true)
            .is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = socket;
        false
    }
}

/// Reads the session's UDP socket a run at a time and splits runs into datagrams.
#[derive(Debug)]
pub struct DatagramReceiver {
    buf: Vec<u8>,
    counts: ReceiveCounts,
}

/// What a [`DatagramReceiver`] has read since it was made, for benchmarks and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveCounts {
    /// Datagrams read.
    pub datagrams: u64,
    /// System calls that read them.
    pub calls: u64,
}

impl Default for DatagramReceiver {
    fn default() -> Self {
        Self::new()
    }
}

impl DatagramReceiver {
    /// A receiver with its one run-sized buffer.
    pub fn new() -> Self {
        Self {
            buf: vec![0; RECEIVE_BUFFER],
            counts: ReceiveCounts::default(),
        }
    }

    /// What this receiver has read so far.
    pub fn counts(&self) -> ReceiveCounts {
        self.counts
    }

    /// Reads one datagram, or one GRO run of them, and hands each to `each` with its
    /// sender; returns how many it handed over. `WouldBlock` when nothing is waiting.
    pub fn recv<S: AsFd>(
        &mut self,
        socket: &S,
        mut each: impl FnMut(SocketAddr, &[u8]),
    ) -> io::Result<usize> {
        let (from, len, stride) = recv_run(socket, &mut self.buf)?;
        self.counts.calls += 1;
        let Some(from) = from else {
            return Ok(0);
        };
        let mut handed = 0;
        // `stride` is the segment size; the last segment may be shorter. A run with no
        // GRO control message is one datagram.
        let stride = if stride == 0 { len.max(1) } else { stride };
        for datagram in self.buf[..len].chunks(stride) {
            each(from, datagram);
            handed += 1;
        }
        if len == 0 {
            // An empty datagram is a datagram (the session ignores it).
            each(from, &[]);
            handed = 1;
        }
        self.counts.datagrams += handed as u64;
        Ok(handed)
    }
}

/// One `recvmsg`: the sender (None when it is not an IP address), the bytes read and the
/// GRO segment size (0 when the read was one datagram).
fn recv_run<S: AsFd>(socket: &S, buf: &mut [u8]) -> io::Result<(Option<SocketAddr>, usize, usize)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg};
    let fd = socket.as_fd().as_raw_fd();
    let mut iov = [IoSliceMut::new(buf)];
    let mut cmsg_space = nix::cmsg_space!(i32);
    let msg = recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut cmsg_space), MsgFlags::empty())?;
    let mut stride = 0;
    if let Ok(cmsgs) = msg.cmsgs() {
        for cmsg in cmsgs {
            #[cfg(target_os = "linux")]
            if let ControlMessageOwned::UdpGroSegments(size) = cmsg {
                stride = usize::try_from(size).unwrap_or(0);
            }
            #[cfg(not(target_os = "linux"))]
            let _ = cmsg;
        }
    }
    let from = msg.address.as_ref().and_then(|a| {
        if let Some(v4) = a.as_sockaddr_in() {
            Some(SocketAddr::V4(SocketAddrV4::from(*v4)))
        } else {
            a.as_sockaddr_in6()
                .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
        }
    });
    Ok((from, msg.bytes, stride))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    fn pair() -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let b = UdpSocket::bind("127.0.0.1:0").expect("bind");
        b.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        (a, b)
    }

    fn datagram(i: usize, len: usize) -> Bytes {
        Bytes::from((0..len).map(|j| (i * 7 + j) as u8).collect::<Vec<u8>>())
    }

    /// Reads until `n` datagrams have arrived (bounded by the socket's read time-out).
    fn read_all(rx: &mut DatagramReceiver, b: &UdpSocket, n: usize) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut got = Vec::new();
        while got.len() < n {
            rx.recv(b, |from, d| got.push((from, d.to_vec())))
                .expect("a datagram within the time-out");
        }
        got
    }

    #[test]
    fn runs_split_at_address_size_and_limits() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let q: Vec<(SocketAddr, Bytes)> = [
            (a, 100),
            (a, 100),
            (a, 40), // a shorter one ends the run
            (a, 100),
            (b, 100), // another address
            (b, 120), // a longer one cannot follow
        ]
        .iter()
        .enumerate()
        .map(|(i, &(to, len))| (to, datagram(i, len)))
        .collect();
        assert_eq!(run_end(&q, 0), 3);
        assert_eq!(run_end(&q, 3), 4);
        assert_eq!(run_end(&q, 4), 5);
        assert_eq!(run_end(&q, 5), 6);
        let many: Vec<_> = (0..200).map(|i| (a, datagram(i, 1_420))).collect();
        // 45 × 1,420 = 63,900 fits 65,000; 46 would not.
        assert_eq!(run_end(&many, 0), 45);
        let small: Vec<_> = (0..200).map(|i| (a, datagram(i, 10))).collect();
        assert_eq!(run_end(&small, 0), MAX_SEGMENTS);
    }

    #[test]
    fn batched_datagrams_arrive_whole_and_in_order_with_fewer_calls() {
        let (a, b) = pair();
        let to = b.local_addr().unwrap();
        let mut rx = DatagramReceiver::new();
        let gro = enable_receive_offload(&b);
        let mut tx = DatagramSender::new();
        let sent: Vec<Bytes> = (0..100)
            .map(|i| datagram(i, if i % 30 == 29 { 300 } else { 1_420 }))
            .collect();
        for d in &sent {
            tx.push(to, d.clone());
        }
        tx.flush(&a);
        assert!(tx.is_empty());
        let counts = tx.counts();
        assert_eq!(counts.datagrams, 100);
        assert_eq!(counts.dropped, 0);
        let got = read_all(&mut rx, &b, 100);
        assert_eq!(got.len(), 100, "nothing extra");
        let from = a.local_addr().unwrap();
        for (i, (sender, bytes)) in got.iter().enumerate() {
            assert_eq!(*sender, from);
            assert_eq!(bytes[..], sent[i][..], "datagram {i}");
        }
        if cfg!(target_os = "linux") {
            // Runs end at every shorter datagram: 29 long and 1 short (41,480 bytes) is
            // one run, three times, then 10 long: 4 sends (on this VM's kernel, 4 reads).
            assert_eq!(counts.calls, 4, "{counts:?}");
            if gro {
                assert!(rx.counts().calls < 100, "{:?}", rx.counts());
            }
        }
    }

    #[test]
    fn unbatched_sender_makes_one_call_per_datagram() {
        let (a, b) = pair();
        let to = b.local_addr().unwrap();
        let mut tx = DatagramSender::unbatched();
        for i in 0..10 {
            tx.push(to, datagram(i, 500));
        }
        tx.flush(&a);
        assert_eq!(
            tx.counts(),
            SendCounts {
                datagrams: 10,
                calls: 10,
                dropped: 0
            }
        );
        let mut rx = DatagramReceiver::new();
        let got = read_all(&mut rx, &b, 10);
        assert!(
            got.iter()
                .enumerate()
                .all(|(i, (_, d))| d[..] == datagram(i, 500)[..])
        );
    }

    #[test]
    fn ipv6_runs_arrive_whole() {
        // Hosts without IPv6 loopback have nothing to test here.
        let (Ok(a), Ok(b)) = (UdpSocket::bind("[::1]:0"), UdpSocket::bind("[::1]:0")) else {
            return;
        };
        b.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        enable_receive_offload(&b);
        let to = b.local_addr().unwrap();
        let mut tx = DatagramSender::new();
        for i in 0..50 {
            tx.push(to, datagram(i, 1_200));
        }
        tx.flush(&a);
        assert_eq!(tx.counts().datagrams, 50);
        let mut rx = DatagramReceiver::new();
        let got = read_all(&mut rx, &b, 50);
        let from = a.local_addr().unwrap();
        for (i, (sender, bytes)) in got.iter().enumerate() {
            assert_eq!(*sender, from);
            assert_eq!(bytes[..], datagram(i, 1_200)[..], "datagram {i}");
        }
    }

    #[test]
    fn interleaved_destinations_keep_their_order() {
        let (a, b) = pair();
        let c = UdpSocket::bind("127.0.0.1:0").expect("bind");
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let (tb, tc) = (b.local_addr().unwrap(), c.local_addr().unwrap());
        let mut tx = DatagramSender::new();
        for i in 0..20 {
            tx.push(if i % 4 < 2 { tb } else { tc }, datagram(i, 1_000));
        }
        tx.flush(&a);
        let (mut rb, mut rc) = (DatagramReceiver::new(), DatagramReceiver::new());
        let at_b = read_all(&mut rb, &b, 10);
        let at_c = read_all(&mut rc, &c, 10);
        let want_b: Vec<usize> = (0..20).filter(|i| i % 4 < 2).collect();
        let want_c: Vec<usize> = (0..20).filter(|i| i % 4 >= 2).collect();
        for (k, &i) in want_b.iter().enumerate() {
            assert_eq!(at_b[k].1[..], datagram(i, 1_000)[..]);
        }
        for (k, &i) in want_c.iter().enumerate() {
            assert_eq!(at_c[k].1[..], datagram(i, 1_000)[..]);
        }
    }
}

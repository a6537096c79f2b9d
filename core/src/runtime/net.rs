//! TCP sockets whose accepts, reads and writes go through the shard's io_uring.
//!
//! Buffers are passed by value and handed back with the result (the
//! ownership model io_uring needs: the kernel may touch a buffer until the
//! completion arrives, so the operation owns it until then).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use io_uring::{opcode, types};

use super::driver::Completion;
use super::shard::{try_with_ctx, with_ctx};

/// An operation in flight: resolves to `cqe.res` and the buffer it owned.
pub(crate) struct Op {
    slot: Option<usize>,
}

impl Op {
    pub(crate) fn new(slot: usize) -> Self {
        Self { slot: Some(slot) }
    }
}

impl Future for Op {
    type Output = Completion;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Completion> {
        let Some(slot) = self.slot else { return Poll::Pending };
        match with_ctx(|c| c.driver.poll_op(slot, cx.waker())) {
            Some(done) => {
                self.slot = None;
                Poll::Ready(done)
            }
            None => Poll::Pending,
        }
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            try_with_ctx(|c| c.driver.orphan(slot));
        }
    }
}

fn cvt(res: i32) -> io::Result<usize> {
    if res < 0 {
        Err(io::Error::from_raw_os_error(-res))
    } else {
        Ok(res as usize)
    }
}

fn setsockopt_int(fd: RawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: passes a pointer to a live local `c_int` and its exact size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn to_sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data for which all-zero is valid.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

fn from_sockaddr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match storage.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, and
            // sockaddr_storage is aligned for it.
            let sin = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::from((ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::from((ip, u16::from_be(sin6.sin6_port))))
        }
        _ => None,
    }
}

/// A listening socket. Create it anywhere (it is `Send`); accept on a shard.
#[derive(Debug)]
pub struct TcpListener {
    fd: OwnedFd,
}

fn socket(addr: &SocketAddr) -> io::Result<OwnedFd> {
    let domain = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: socket takes no pointers; the result is checked.
    let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn bind(fd: &OwnedFd, addr: &SocketAddr) -> io::Result<()> {
    let (storage, len) = to_sockaddr(addr);
    // SAFETY: `storage` holds a valid sockaddr of `len` bytes.
    let r = unsafe { libc::bind(fd.as_raw_fd(), (&storage as *const libc::sockaddr_storage).cast(), len) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl TcpListener {
    /// `count` listeners on `addr` (one per shard), bound with
    /// `SO_REUSEPORT` so that the kernel spreads connections among them.
    ///
    /// `SO_REUSEPORT` would also let a second process of the same user bind
    /// a port that is already served (and, for port 0, the kernel may hand
    /// out such a port), silently splitting its traffic; so the address is
    /// first claimed by a plain socket, which fails with `EADDRINUSE` when
    /// anyone listens there, and, for port 0, reveals a port nobody uses.
    pub fn bind_group(addr: SocketAddr, count: usize, backlog: i32) -> io::Result<Vec<Self>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let probe = socket(&addr)?;
            setsockopt_int(probe.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
            bind(&probe, &addr)?;
            let target = local_addr(probe.as_raw_fd())?;
            drop(probe);
            let group: io::Result<Vec<Self>> =
                (0..count.max(1)).map(|_| Self::bind_reuseport(target, backlog)).collect();
            match group {
                // Someone took the free port between the probe and the
                // group: pick another one.
                Err(e) if addr.port() == 0 && e.kind() == io::ErrorKind::AddrInUse && attempt < 8 => {}
                other => return other,
            }
        }
    }

    /// Binds `addr` with `SO_REUSEADDR` and `SO_REUSEPORT`. Prefer
    /// [`TcpListener::bind_group`], which first checks that nobody else
    /// serves the address.
    pub fn bind_reuseport(addr: SocketAddr, backlog: i32) -> io::Result<Self> {
        let domain = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
        // SAFETY: socket takes no pointers; the result is checked.
        let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        setsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
        setsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
        let (storage, len) = to_sockaddr(&addr);
        // SAFETY: `storage` holds a valid sockaddr of `len` bytes.
        let r =
            unsafe { libc::bind(fd.as_raw_fd(), (&storage as *const libc::sockaddr_storage).cast(), len) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: listen takes no pointers.
        if unsafe { libc::listen(fd.as_raw_fd(), backlog) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { fd })
    }

    /// The address this listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        local_addr(self.fd.as_raw_fd())
    }

    /// Accepts one connection (with `TCP_NODELAY` set). Cancelled with
    /// `ECANCELED` when the runtime stops.
    pub async fn accept(&self) -> io::Result<TcpStream> {
        let sqe =
            opcode::Accept::new(types::Fd(self.fd.as_raw_fd()), std::ptr::null_mut(), std::ptr::null_mut())
                .flags(libc::SOCK_CLOEXEC)
                .build();
        // SAFETY: the SQE carries no pointers, and `self.fd` is open.
        let slot = with_ctx(|c| unsafe { c.driver.submit(sqe, None, true) });
        let (res, _) = Op::new(slot).await;
        let fd = cvt(res)? as RawFd;
        // SAFETY: the kernel handed us a fresh descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let _ = setsockopt_int(fd.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
        Ok(TcpStream { fd })
    }
}

fn local_addr(fd: RawFd) -> io::Result<SocketAddr> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` and `len` are live locals of the sizes given.
    let r = unsafe { libc::getsockname(fd, (&mut storage as *mut libc::sockaddr_storage).cast(), &mut len) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    from_sockaddr(&storage).ok_or_else(|| io::Error::other("unknown address family"))
}

/// A connected TCP socket served by the current shard's io_uring.
#[derive(Debug)]
pub struct TcpStream {
    fd: OwnedFd,
}

impl TcpStream {
    /// The raw descriptor (for `shutdown` and socket options).
    pub fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Receives into `buf`'s spare capacity (`buf.len()..buf.capacity()`),
    /// extending its length. `Ok(0)` means the peer closed. Cancelled with
    /// `ECANCELED` when the runtime stops. Fails with `InvalidInput` if `buf`
    /// has no spare capacity.
    pub async fn recv(&self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        let len = buf.len();
        let spare = buf.capacity() - len;
        if spare == 0 {
            return (Err(io::ErrorKind::InvalidInput.into()), buf);
        }
        let spare = spare.min(u32::MAX as usize) as u32;
        // SAFETY: `len <= capacity`, so the pointer stays inside (or one
        // past) the allocation.
        let ptr = unsafe { buf.as_mut_ptr().add(len) };
        let sqe = opcode::Recv::new(types::Fd(self.fd.as_raw_fd()), ptr, spare).build();
        // SAFETY: the SQE points into `buf`'s heap allocation, which the slot
        // owns until completion; `self.fd` is open.
        let slot = with_ctx(|c| unsafe { c.driver.submit(sqe, Some(buf), true) });
        let (res, buf) = Op::new(slot).await;
        let mut buf = buf.unwrap_or_default();
        match cvt(res) {
            Ok(n) => {
                debug_assert!(buf.len() + n <= buf.capacity());
                // SAFETY: the kernel initialised `n` bytes of spare capacity
                // starting at the old length.
                unsafe { buf.set_len(len + n) };
                (Ok(n), buf)
            }
            Err(e) => (Err(e), buf),
        }
    }

    /// Sends `buf[from..]`, returning how many bytes went out.
    pub async fn send(&self, buf: Vec<u8>, from: usize) -> (io::Result<usize>, Vec<u8>) {
        let from = from.min(buf.len());
        let n = (buf.len() - from).min(u32::MAX as usize) as u32;
        // SAFETY: `from <= len`, so the pointer stays inside the allocation.
        let ptr = unsafe { buf.as_ptr().add(from) };
        let sqe = opcode::Send::new(types::Fd(self.fd.as_raw_fd()), ptr, n).flags(libc::MSG_NOSIGNAL).build();
        // SAFETY: the SQE points into `buf`'s heap allocation, which the slot
        // owns until completion; `self.fd` is open.
        let slot = with_ctx(|c| unsafe { c.driver.submit(sqe, Some(buf), false) });
        let (res, buf) = Op::new(slot).await;
        (cvt(res), buf.unwrap_or_default())
    }

    /// Sends all of `buf`, then hands it back.
    pub async fn send_all(&self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        let mut buf = buf;
        let mut from = 0;
        while from < buf.len() {
            let (res, b) = self.send(buf, from).await;
            buf = b;
            match res {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                Ok(n) => from += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    /// Shuts down reading, writing or both (`libc::SHUT_*`).
    pub fn shutdown(&self, how: i32) -> io::Result<()> {
        // SAFETY: shutdown takes no pointers.
        if unsafe { libc::shutdown(self.fd.as_raw_fd(), how) } < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// The local address of the connection.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        local_addr(self.fd.as_raw_fd())
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        // SAFETY: all-zero is a valid sockaddr_storage.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: `storage` and `len` are live locals of the sizes given.
        let r = unsafe {
            libc::getpeername(
                self.fd.as_raw_fd(),
                (&mut storage as *mut libc::sockaddr_storage).cast(),
                &mut len,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        from_sockaddr(&storage).ok_or_else(|| io::Error::other("unknown address family"))
    }
}

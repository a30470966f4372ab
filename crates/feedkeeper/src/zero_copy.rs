//! Large response bodies sent by the kernel from pages it already holds, instead of copied into
//! the socket.
//!
//! A body made with [`file_backed`] keeps its bytes in memory as usual *and* in a sealed memory
//! file (`memfd`): twice its size, which the widget cache counts. The serving
//! threads wrap every connection in a [`ZeroCopyStream`], which recognises such a body among
//! the buffers hyper asks it to write and sends it with `sendfile(2)`: the socket takes
//! references to the file's pages. Copying a 40 KB widget into the socket cost about a quarter
//! of a serving thread's time per request at 256 connections, the whole of the difference with
//! nginx, which sends files this way (docs/benchmarks.md).
//!
//! A body is recognised by address: a registered body's memory cannot be reused while the body
//! exists, and it is unregistered before it is freed, so bytes inside a registered range are
//! that body's bytes, at the same offset in its file (sealed against any change). Only buffers
//! of at least [`MIN_LEN`] bytes are looked up, so headers and small bodies cost nothing.
//!
//! Everything degrades to copying: small bodies, systems without `memfd` (not Linux), a kernel
//! or sandbox that refuses `sendfile`, and bodies beyond the cap on open files ([`files_max`]:
//! a node keeps most of its file descriptors for connections).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use axum::body::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bodies shorter than this are copied: below it, a second system call costs more than the copy,
/// and a file's last page would waste much of its size.
pub const MIN_LEN: usize = 16 * 1024;

/// Bytes sent with `sendfile` since start (tests and the benchmark check that the path is taken).
static SENT_FROM_FILES: AtomicU64 = AtomicU64::new(0);

/// How many bytes have been sent from memory files since start.
pub fn bytes_sent_from_files() -> u64 {
    SENT_FROM_FILES.load(Ordering::Relaxed)
}

/// How many bodies may hold a memory file at once: a quarter of the process's file-descriptor
/// limit, at most 4 096 (beyond it, bodies are kept and sent as before).
pub fn files_max() -> usize {
    imp::files_max()
}

/// `body` as `Bytes` backed also by a sealed memory file, when it is large enough to be worth
/// sending with `sendfile` and a file can be had; otherwise `body` back, untouched.
pub fn file_backed(body: Vec<u8>) -> Result<Bytes, Vec<u8>> {
    if body.len() < MIN_LEN {
        return Err(body);
    }
    imp::file_backed(body)
}

/// Whether `bytes` (or the part of a body it is) will be sent from a memory file.
pub fn is_file_backed(bytes: &[u8]) -> bool {
    imp::lookup(bytes).is_some()
}

/// Turns sending from memory files on (the default) or off: off, every body is copied. The
/// widget benchmark measures both in one run.
pub fn set_sendfile(enabled: bool) {
    imp::set_sendfile(enabled);
}

/// A TCP connection whose writes send registered bodies with `sendfile` (see the module docs).
pub struct ZeroCopyStream {
    inner: tokio::net::TcpStream,
}

impl ZeroCopyStream {
    pub fn new(inner: tokio::net::TcpStream) -> ZeroCopyStream {
        ZeroCopyStream { inner }
    }
}

impl AsyncRead for ZeroCopyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ZeroCopyStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if !bufs.iter().any(|b| imp::may_be_file_backed(b)) {
            return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        }
        // What tokio's own vectored write does, with `write_mixed` as the system calls.
        loop {
            std::task::ready!(self.inner.poll_write_ready(cx))?;
            // `try_io` clears the readiness when the socket is full, so the next poll waits.
            match self.inner.try_io(tokio::io::Interest::WRITABLE, || {
                imp::write_mixed(&self.inner, bufs)
            }) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                done => return Poll::Ready(done),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use std::collections::BTreeMap;
    use std::fs::File;
    use std::io::{self, IoSlice, Write as _};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, LazyLock, PoisonError, RwLock};

    use axum::body::Bytes;
    use rustix::fs::{MemfdFlags, SealFlags};
    use rustix::net::{SendAncillaryBuffer, SendFlags};

    use super::{MIN_LEN, SENT_FROM_FILES};

    /// Memory files open for bodies now.
    static FILES_OPEN: AtomicUsize = AtomicUsize::new(0);
    /// Set when the kernel refuses `sendfile` itself (a sandbox that filters it): from then on
    /// every body is copied.
    static SENDFILE_REFUSED: AtomicBool = AtomicBool::new(false);
    /// Set by [`super::set_sendfile`]`(false)`.
    static SENDFILE_OFF: AtomicBool = AtomicBool::new(false);

    pub(super) fn set_sendfile(enabled: bool) {
        SENDFILE_OFF.store(!enabled, Ordering::Relaxed);
    }

    /// A registered body: its length and the file holding it.
    struct Entry {
        len: usize,
        file: Arc<File>,
    }

    /// Registered bodies by the address of their first byte.
    static REGISTRY: RwLock<BTreeMap<usize, Entry>> = RwLock::new(BTreeMap::new());

    pub(super) fn files_max() -> usize {
        static MAX: LazyLock<usize> = LazyLock::new(|| {
            let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
                .current
                .unwrap_or(u64::MAX);
            usize::try_from(limit / 4).unwrap_or(usize::MAX).min(4096)
        });
        *MAX
    }

    /// Takes one of `max` slots counted by `open`, or none when all are taken. Taken before the
    /// file is made, so renderings on several threads never pass the cap together.
    pub(super) fn take_slot(open: &AtomicUsize, max: usize) -> bool {
        if open.fetch_add(1, Ordering::Relaxed) < max {
            return true;
        }
        open.fetch_sub(1, Ordering::Relaxed);
        false
    }

    /// The owner of a registered body's memory; unregisters it before the memory is freed.
    struct FileBacked {
        bytes: Box<[u8]>,
    }

    impl AsRef<[u8]> for FileBacked {
        fn as_ref(&self) -> &[u8] {
            &self.bytes
        }
    }

    impl Drop for FileBacked {
        fn drop(&mut self) {
            let removed = REGISTRY
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&(self.bytes.as_ptr() as usize));
            if removed.is_some() {
                FILES_OPEN.fetch_sub(1, Ordering::Relaxed);
            }
            // The memory is freed after this, and the file closed with the entry (or with the
            // last write holding it).
        }
    }

    pub(super) fn file_backed(body: Vec<u8>) -> Result<Bytes, Vec<u8>> {
        if !take_slot(&FILES_OPEN, files_max()) {
            return Err(body);
        }
        let file = match sealed_file(&body) {
            Ok(file) => file,
            Err(e) => {
                FILES_OPEN.fetch_sub(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "a body could not get a memory file; it will be copied");
                return Err(body);
            }
        };
        let bytes = body.into_boxed_slice();
        REGISTRY
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                bytes.as_ptr() as usize,
                Entry {
                    len: bytes.len(),
                    file: Arc::new(file),
                },
            );
        Ok(Bytes::from_owner(FileBacked { bytes }))
    }

    /// A memory file holding `bytes`, sealed so that nothing can change it afterwards.
    fn sealed_file(bytes: &[u8]) -> io::Result<File> {
        if let Some(dir) = std::env::var_os("FK_EXPERIMENT_DIR") {
            let fd = rustix::fs::open(
                std::path::Path::new(&dir),
                rustix::fs::OFlags::TMPFILE | rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::from_raw_mode(0o600),
            )?;
            let mut file = File::from(fd);
            file.write_all(bytes)?;
            return Ok(file);
        }
        let fd = rustix::fs::memfd_create(
            "feedkeeper-body",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        let mut file = File::from(fd);
        file.write_all(bytes)?;
        rustix::fs::fcntl_add_seals(
            &file,
            SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL,
        )?;
        Ok(file)
    }

    /// Whether `buf` is worth looking up (cheap: no lock).
    pub(super) fn may_be_file_backed(buf: &[u8]) -> bool {
        buf.len() >= MIN_LEN
            && FILES_OPEN.load(Ordering::Relaxed) > 0
            && !SENDFILE_REFUSED.load(Ordering::Relaxed)
            && !SENDFILE_OFF.load(Ordering::Relaxed)
    }

    /// The file and offset holding `buf`, if it lies inside a registered body.
    pub(super) fn lookup(buf: &[u8]) -> Option<(Arc<File>, u64)> {
        if !may_be_file_backed(buf) {
            return None;
        }
        let start = buf.as_ptr() as usize;
        let registry = REGISTRY.read().unwrap_or_else(PoisonError::into_inner);
        let (&base, entry) = registry.range(..=start).next_back()?;
        let offset = start - base;
        (offset + buf.len() <= entry.len).then(|| (entry.file.clone(), offset as u64))
    }

    #[cfg(test)]
    pub(super) fn is_registered(address: usize) -> bool {
        REGISTRY
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&address)
    }

    /// Whether `sendfile` failed because it cannot be used here at all, rather than because of
    /// this connection (full, reset, closed).
    pub(super) fn refused(e: rustix::io::Errno) -> bool {
        use rustix::io::Errno;
        [
            Errno::NOSYS,
            Errno::PERM,
            Errno::ACCESS,
            Errno::INVAL,
            Errno::OPNOTSUPP,
        ]
        .contains(&e)
    }

    /// Writes `bufs` in order without blocking: runs of ordinary buffers with one `sendmsg`
    /// (flagged `MSG_MORE` when a body follows, so headers and body leave in the same packets),
    /// registered bodies with `sendfile`. Returns how many bytes went out, stopping at the first
    /// short write; an error only if nothing went out.
    pub(super) fn write_mixed(
        socket: &tokio::net::TcpStream,
        bufs: &[IoSlice<'_>],
    ) -> io::Result<usize> {
        let mut written = 0;
        let mut rest = bufs;
        while !rest.is_empty() {
            // The ordinary buffers up to the next registered body, which is looked up once.
            let mut body = None;
            let mut plain = 0;
            while plain < rest.len() {
                body = lookup(&rest[plain]);
                if body.is_some() {
                    break;
                }
                plain += 1;
            }
            if plain > 0 {
                let flags = if body.is_some() {
                    SendFlags::MORE | SendFlags::NOSIGNAL
                } else {
                    SendFlags::NOSIGNAL
                };
                let run = &rest[..plain];
                let wanted: usize = run.iter().map(|b| b.len()).sum();
                match rustix::net::sendmsg(socket, run, &mut SendAncillaryBuffer::default(), flags)
                {
                    Ok(n) => {
                        written += n;
                        if n < wanted {
                            return Ok(written);
                        }
                    }
                    Err(_) if written > 0 => return Ok(written),
                    Err(e) => return Err(e.into()),
                }
                rest = &rest[plain..];
            }
            if let Some((file, mut offset)) = body {
                let wanted = rest[0].len();
                // `sendfile` takes no MSG_NOSIGNAL, but Rust programs ignore SIGPIPE (std sets
                // it before `main`), so a peer that has gone is an EPIPE error here.
                let sent = match rustix::fs::sendfile(socket, &*file, Some(&mut offset), wanted) {
                    Ok(n) => {
                        SENT_FROM_FILES.fetch_add(n as u64, Ordering::Relaxed);
                        Ok(n)
                    }
                    Err(e) if refused(e) => {
                        if !SENDFILE_REFUSED.swap(true, Ordering::Relaxed) {
                            tracing::warn!(error = %e, "sendfile is refused here; large bodies will be copied");
                        }
                        rustix::net::send(socket, &rest[0], SendFlags::NOSIGNAL)
                    }
                    Err(e) => Err(e),
                };
                match sent {
                    Ok(n) => {
                        written += n;
                        if n < wanted {
                            return Ok(written);
                        }
                    }
                    Err(_) if written > 0 => return Ok(written),
                    Err(e) => return Err(e.into()),
                }
                rest = &rest[1..];
            }
        }
        Ok(written)
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::fs::File;
    use std::io::{self, IoSlice};
    use std::sync::Arc;

    use axum::body::Bytes;

    pub(super) fn files_max() -> usize {
        0
    }

    pub(super) fn file_backed(body: Vec<u8>) -> Result<Bytes, Vec<u8>> {
        Err(body)
    }

    pub(super) fn may_be_file_backed(_: &[u8]) -> bool {
        false
    }

    pub(super) fn lookup(_: &[u8]) -> Option<(Arc<File>, u64)> {
        None
    }

    pub(super) fn set_sendfile(_: bool) {}

    #[cfg(test)]
    pub(super) fn is_registered(_: usize) -> bool {
        false
    }

    /// Never called (no body is file-backed here); writes as the stream itself would.
    pub(super) fn write_mixed(
        socket: &tokio::net::TcpStream,
        bufs: &[IoSlice<'_>],
    ) -> io::Result<usize> {
        socket.try_write_vectored(bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_bodies_stay_ordinary_and_large_ones_are_found_by_any_slice() {
        assert!(file_backed(vec![1; MIN_LEN - 1]).is_err());

        let body: Vec<u8> = (0..MIN_LEN * 3).map(|i| (i % 251) as u8).collect();
        let Ok(large) = file_backed(body.clone()) else {
            assert!(!cfg!(target_os = "linux"), "Linux has memory files");
            return;
        };
        assert_eq!(&large[..], &body[..]);
        assert!(is_file_backed(&large));
        // A part left after a short write is still found, if it is worth it.
        assert!(is_file_backed(&large[MIN_LEN..]));
        assert!(!is_file_backed(&large[MIN_LEN * 2 + 1..]));
        // The same bytes elsewhere in memory are not the registered body.
        assert!(!is_file_backed(&body));

        // The last clone gone, the body is unregistered (before its memory is freed).
        let address = large.as_ptr() as usize;
        let clone = large.slice(1..);
        drop(large);
        assert!(imp::is_registered(address));
        drop(clone);
        assert!(!imp::is_registered(address));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sendfile_is_given_up_only_when_the_system_refuses_it() {
        use rustix::io::Errno;
        for unusable in [Errno::NOSYS, Errno::PERM, Errno::INVAL, Errno::OPNOTSUPP] {
            assert!(imp::refused(unusable), "{unusable:?}");
        }
        // A full, reset or closed connection is that connection's business.
        for passing in [Errno::AGAIN, Errno::PIPE, Errno::CONNRESET, Errno::INTR] {
            assert!(!imp::refused(passing), "{passing:?}");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn memory_files_are_capped_and_a_freed_slot_is_taken_again() {
        use std::sync::atomic::AtomicUsize;

        let open = AtomicUsize::new(0);
        assert!(imp::take_slot(&open, 2));
        assert!(imp::take_slot(&open, 2));
        assert!(
            !imp::take_slot(&open, 2),
            "the cap is reached: kept as before"
        );
        assert_eq!(open.load(Ordering::Relaxed), 2);
        open.fetch_sub(1, Ordering::Relaxed);
        assert!(imp::take_slot(&open, 2));
        assert!(files_max() >= 1 && files_max() <= 4096);
    }
}

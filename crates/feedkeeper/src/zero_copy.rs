//! Large response bodies sent by the kernel from a file's pages, as nginx sends files
//! (`sendfile(2)`), instead of copied into the socket.
//!
//! A body given to [`BodyFiles::back`] keeps its bytes in memory as before *and* gets an
//! unnamed file (`O_TMPFILE`) of its own in the node's data directory, written once when the
//! body is made. The serving threads wrap every connection in a [`ZeroCopyStream`], which
//! recognises such a body among the buffers hyper writes and sends it with `sendfile`: the
//! socket takes references to the file's pages. Copying a 42 KB widget into the socket was the
//! difference with nginx on the plain rows of the widget benchmark (docs/benchmarks.md).
//! Memory files (`memfd`, tmpfs) were measured too and gained nothing: the kernel's splice read
//! of shared memory looks up each page on its own. So the files are on the data directory's
//! filesystem.
//!
//! A body is recognised by address: a registered body's memory cannot be reused while the body
//! exists, and it is unregistered before it is freed, so bytes inside a registered range are
//! that body's bytes, at the same offset in its file (written whole before registering, never
//! written again). Only buffers of at least [`MIN_LEN`] bytes are looked up, so headers and
//! small bodies cost nothing.
//!
//! **Cost**: the files hold what the large bodies hold: for widgets, at most
//! `widgets.cache_bytes`, plus renderings the cache has dropped that connections are still
//! sending (at most [`files_max`] files in all). That is disk space in the data directory
//! (seen by `df`, not `du`: the files have no name) and the same in the kernel's page cache,
//! charged to the node's memory cgroup like any file it writes until the kernel has written it
//! back (within about 30 s) and may reclaim it. Under memory pressure a body's pages may be
//! dropped and read back from disk when sent, on the serving thread, as nginx's `sendfile`
//! does. The process's own memory is unchanged. The files vanish when their body is dropped
//! (closed on a thread of their own: freeing a file's blocks is filesystem work), and a crash
//! leaves nothing behind. `feedkeeper_body_file_bytes` shows what they hold.
//!
//! **Everything degrades to copying**, and no answer is lost: small bodies; a data directory
//! on a filesystem kept in memory (tmpfs: the files would double the memory), or one that
//! refuses unnamed files or writes (all checked at start, and logged); a filesystem with less
//! than 1 GiB or 5 % free (kept for the database and images; checked for every file); a full
//! disk (that body); a body beyond the cap on open files ([`files_max`]); a file the kernel
//! cannot send (that write: the bytes are in memory too); a kernel or sandbox that keeps
//! refusing `sendfile` (from then on); systems other than Linux.

use std::io::{self, IoSlice};
use std::path::Path;
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

/// How many bytes have been sent from body files since start.
pub fn bytes_sent_from_files() -> u64 {
    SENT_FROM_FILES.load(Ordering::Relaxed)
}

/// Bytes held in body files now (disk space in the data directory, and page cache).
pub fn bytes_in_files() -> u64 {
    imp::file_bytes()
}

/// How many bodies may hold a file at once: a quarter of the process's file-descriptor limit,
/// at most 4 096 (a node keeps most of its descriptors for connections). Beyond it, bodies are
/// kept and copied as before.
pub fn files_max() -> usize {
    imp::files_max()
}

/// Turns sending from files on (the default) or off for the whole process: off, every body is
/// copied. The widget benchmark measures both in one run.
pub fn set_sendfile(enabled: bool) {
    imp::set_sendfile(enabled);
}

/// Whether `bytes` (or the part of a body it is) will be sent from a file.
pub fn is_file_backed(bytes: &[u8]) -> bool {
    imp::lookup(bytes).is_some()
}

/// Where bodies get their files: a directory on a filesystem that makes unnamed files. Cheap to
/// clone (one shared descriptor of the directory).
#[derive(Clone, Debug)]
pub struct BodyFiles {
    dir: imp::Dir,
}

impl BodyFiles {
    /// Files in `dir` (made if missing), once a test file has been made and written there: the
    /// error says why not (a filesystem without `O_TMPFILE`, read-only, full, not Linux), and
    /// the caller copies instead.
    pub fn open(dir: &Path) -> io::Result<BodyFiles> {
        Ok(BodyFiles {
            dir: imp::Dir::open(dir)?,
        })
    }

    /// `body`, backed also by a file of its own when it is large enough, a file can be had and
    /// written whole; otherwise `body` as it was. The result is the same memory as `body`,
    /// which must own its memory (a rendering, not a slice of something registered).
    pub fn back(&self, body: Bytes) -> Bytes {
        if body.len() < MIN_LEN {
            return body;
        }
        imp::back(&self.dir, body)
    }
}

/// A TCP connection whose writes send bodies backed by files with `sendfile` (see the module
/// docs). Anything else goes through as the stream's own writes.
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
    use std::os::fd::OwnedFd;
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Arc, LazyLock, PoisonError, RwLock};

    use axum::body::Bytes;
    use rustix::fs::{Mode, OFlags};
    use rustix::io::Errno;
    use rustix::net::{SendAncillaryBuffer, SendFlags};

    use super::{MIN_LEN, SENT_FROM_FILES};

    /// Body files open now, and the bytes they hold.
    static FILES_OPEN: AtomicUsize = AtomicUsize::new(0);
    static FILE_BYTES: AtomicU64 = AtomicU64::new(0);
    /// Set when the kernel keeps refusing `sendfile` itself (a sandbox that filters it): from
    /// then on every body is copied.
    static SENDFILE_REFUSED: AtomicBool = AtomicBool::new(false);
    /// Refusals since `sendfile` last worked; [`REFUSALS_TO_GIVE_UP`] of them in a row turn it
    /// off (one refusal may be one file's or one socket's, from a security module).
    static REFUSALS: AtomicUsize = AtomicUsize::new(0);
    const REFUSALS_TO_GIVE_UP: usize = 64;
    /// Set by [`super::set_sendfile`]`(false)`.
    static SENDFILE_OFF: AtomicBool = AtomicBool::new(false);
    /// Whether a failure to make a body's file has been logged as a warning since files were
    /// last made (once per episode: a full disk would otherwise log every rendering).
    static MAKE_FAILURE_WARNED: AtomicBool = AtomicBool::new(false);

    /// Files are not made while the data directory's filesystem has less than this free, or
    /// less than [`FREE_PERCENT_FLOOR`] percent of its size: the database and the stored
    /// images need it more.
    const FREE_BYTES_FLOOR: u64 = 1 << 30;
    const FREE_PERCENT_FLOOR: u64 = 5;

    /// Filesystems kept in memory (tmpfs, ramfs): a file there would double a body's memory,
    /// and its pages cannot be written back and reclaimed.
    const IN_MEMORY_FILESYSTEMS: [u32; 2] = [0x0102_1994, 0x8584_58f6];

    /// Bytes held in body files now.
    pub(super) fn file_bytes() -> u64 {
        FILE_BYTES.load(Ordering::Relaxed)
    }

    /// Where the last reference to a body's file goes: a thread of its own closes it, because
    /// the last close of an unnamed file frees its blocks (journal work on ext4), which must not
    /// stall a serving thread. Inline if that thread could not be started.
    fn close_later(file: Arc<File>) {
        static CLOSER: LazyLock<Option<std::sync::mpsc::Sender<Arc<File>>>> = LazyLock::new(|| {
            let (send, receive) = std::sync::mpsc::channel::<Arc<File>>();
            std::thread::Builder::new()
                .name("body-files-closer".into())
                .spawn(move || receive.into_iter().for_each(drop))
                .ok()
                .map(|_| send)
        });
        if let Some(Err(returned)) = CLOSER.as_ref().map(|closer| closer.send(file)) {
            drop(returned.0);
        }
    }

    pub(super) fn set_sendfile(enabled: bool) {
        SENDFILE_OFF.store(!enabled, Ordering::Relaxed);
    }

    /// A directory, held open (`O_PATH`): files are made relative to it, wherever it is moved.
    #[derive(Clone, Debug)]
    pub(super) struct Dir(Arc<OwnedFd>);

    impl Dir {
        pub(super) fn open(path: &Path) -> io::Result<Dir> {
            std::fs::create_dir_all(path)?;
            let fd = rustix::fs::open(
                path,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            // Truncated on purpose: the magic numbers are 32 bits wide, `f_type`'s width varies.
            let kind = rustix::fs::fstatfs(&fd)?.f_type as u32;
            if IN_MEMORY_FILESYSTEMS.contains(&kind) {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "its filesystem is kept in memory (tmpfs): files there would hold every \
                     large answer twice in memory",
                ));
            }
            let dir = Dir(Arc::new(fd));
            // Refused here rather than at every body: a filesystem without unnamed files, a
            // read-only or full one.
            dir.file_holding(&[0; 1])?;
            Ok(dir)
        }

        /// Whether `len` more bytes leave the filesystem above the floor of free space.
        pub(super) fn room_for(&self, len: usize) -> io::Result<()> {
            let stats = rustix::fs::fstatvfs(&*self.0)?;
            let free = stats.f_bavail.saturating_mul(stats.f_frsize);
            let size = stats.f_blocks.saturating_mul(stats.f_frsize);
            let floor = FREE_BYTES_FLOOR.max(size / 100 * FREE_PERCENT_FLOOR);
            if free.saturating_sub(len as u64) < floor {
                return Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    format!(
                        "{} MiB free, below the {} MiB kept for the database and images",
                        free >> 20,
                        floor >> 20
                    ),
                ));
            }
            Ok(())
        }

        /// An unnamed file in the directory holding `bytes`, written whole.
        fn file_holding(&self, bytes: &[u8]) -> io::Result<File> {
            self.file_holding_opened(bytes, OFlags::RDWR)
        }

        fn file_holding_opened(&self, bytes: &[u8], access: OFlags) -> io::Result<File> {
            self.room_for(bytes.len())?;
            // EXCL: the file can never be given a name (linked) by anyone.
            let fd = rustix::fs::openat(
                &*self.0,
                ".",
                OFlags::TMPFILE | OFlags::EXCL | access | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )?;
            let mut file = File::from(fd);
            // Short writes are continued; a full disk is an error here (and the body copied).
            file.write_all(bytes)?;
            Ok(file)
        }
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

    /// The owner of a registered body: holds its memory, and unregisters it before the memory
    /// is freed.
    struct FileBacked {
        bytes: Bytes,
        /// Always `Some` until dropped (taken then, to be closed elsewhere).
        file: Option<Arc<File>>,
    }

    impl AsRef<[u8]> for FileBacked {
        fn as_ref(&self) -> &[u8] {
            &self.bytes
        }
    }

    impl Drop for FileBacked {
        fn drop(&mut self) {
            let Some(file) = self.file.take() else {
                return;
            };
            let address = self.bytes.as_ptr() as usize;
            let mut registry = REGISTRY.write().unwrap_or_else(PoisonError::into_inner);
            let ours = registry
                .get(&address)
                .is_some_and(|entry| Arc::ptr_eq(&entry.file, &file));
            let removed = ours.then(|| registry.remove(&address)).flatten();
            drop(registry);
            if let Some(entry) = removed {
                FILES_OPEN.fetch_sub(1, Ordering::Relaxed);
                FILE_BYTES.fetch_sub(entry.len as u64, Ordering::Relaxed);
                close_later(entry.file);
            }
            close_later(file);
            // The memory is freed after this, unregistered.
        }
    }

    pub(super) fn back(dir: &Dir, body: Bytes) -> Bytes {
        back_with(dir, body, OFlags::RDWR)
    }

    fn back_with(dir: &Dir, body: Bytes, access: OFlags) -> Bytes {
        if !take_slot(&FILES_OPEN, files_max()) {
            return body;
        }
        let file = match dir.file_holding_opened(&body, access) {
            Ok(file) => Arc::new(file),
            Err(e) => {
                FILES_OPEN.fetch_sub(1, Ordering::Relaxed);
                if !MAKE_FAILURE_WARNED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "a large answer could not get its file in the data directory (full?); such answers are copied until it can");
                } else {
                    tracing::debug!(error = %e, "a large answer could not get its file; it will be copied");
                }
                return body;
            }
        };
        if MAKE_FAILURE_WARNED.load(Ordering::Relaxed) {
            // Files can be made again: a next failure is worth a warning again.
            MAKE_FAILURE_WARNED.store(false, Ordering::Relaxed);
            tracing::info!("large answers get their files again");
        }
        let start = body.as_ptr() as usize;
        let end = start + body.len();
        let mut registry = REGISTRY.write().unwrap_or_else(PoisonError::into_inner);
        // Bodies own their memory, so ranges never overlap; should one be given twice (a
        // shared buffer), it is copied rather than risk sending another body's file.
        let before = registry
            .range(..=start)
            .next_back()
            .is_some_and(|(&base, entry)| base + entry.len > start);
        let after = registry.range(start..end).next().is_some();
        if before || after {
            drop(registry);
            FILES_OPEN.fetch_sub(1, Ordering::Relaxed);
            close_later(file);
            return body;
        }
        registry.insert(
            start,
            Entry {
                len: body.len(),
                file: file.clone(),
            },
        );
        drop(registry);
        FILE_BYTES.fetch_add(body.len() as u64, Ordering::Relaxed);
        Bytes::from_owner(FileBacked {
            bytes: body,
            file: Some(file),
        })
    }

    /// A body backed by a file the kernel cannot send from (opened for writing only), to test
    /// that such a write is copied instead.
    #[cfg(test)]
    pub(super) fn back_unsendable(dir: &Dir, body: Bytes) -> Bytes {
        back_with(dir, body, OFlags::WRONLY)
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

    /// Whether `sendfile` failed because it cannot be used here at all (a sandbox, a kernel
    /// without it), rather than because of one file or this connection.
    pub(super) fn refused(e: Errno) -> bool {
        [Errno::NOSYS, Errno::PERM, Errno::ACCESS, Errno::OPNOTSUPP].contains(&e)
    }

    /// Sends `buf` from `file` at `offset`; if the file cannot be sent from, copies `buf` (the
    /// same bytes, in memory) instead. The connection's own errors (full, reset, closed) are
    /// returned.
    fn send_from_file(
        socket: &tokio::net::TcpStream,
        file: &File,
        mut offset: u64,
        buf: &[u8],
    ) -> Result<usize, Errno> {
        loop {
            // `sendfile` takes no MSG_NOSIGNAL, but Rust programs ignore SIGPIPE (std's `main`
            // sets that, for the binary and its test harnesses; a program embedding this
            // library with a `main` of its own must too), so a peer that has gone is an EPIPE
            // error here.
            match rustix::fs::sendfile(socket, file, Some(&mut offset), buf.len()) {
                Ok(n) => {
                    SENT_FROM_FILES.fetch_add(n as u64, Ordering::Relaxed);
                    if REFUSALS.load(Ordering::Relaxed) != 0 {
                        REFUSALS.store(0, Ordering::Relaxed);
                    }
                    return Ok(n);
                }
                Err(Errno::INTR) => continue,
                Err(e) if e == Errno::AGAIN => return Err(e),
                Err(e) => {
                    if refused(e) {
                        let in_a_row = REFUSALS.fetch_add(1, Ordering::Relaxed) + 1;
                        if in_a_row >= REFUSALS_TO_GIVE_UP
                            && !SENDFILE_REFUSED.swap(true, Ordering::Relaxed)
                        {
                            tracing::warn!(error = %e, "sendfile is refused here; large answers will be copied");
                        }
                    } else {
                        // A file the kernel could not read, or the connection's own error,
                        // which the copy meets again and returns.
                        tracing::debug!(error = %e, "sendfile failed; copying this answer");
                    }
                    return send_plain(socket, &[IoSlice::new(buf)], SendFlags::NOSIGNAL);
                }
            }
        }
    }

    fn send_plain(
        socket: &tokio::net::TcpStream,
        bufs: &[IoSlice<'_>],
        flags: SendFlags,
    ) -> Result<usize, Errno> {
        loop {
            match rustix::net::sendmsg(socket, bufs, &mut SendAncillaryBuffer::default(), flags) {
                Err(Errno::INTR) => continue,
                sent => return sent,
            }
        }
    }

    /// Writes `bufs` in order without blocking: runs of ordinary buffers with one `sendmsg`
    /// (flagged `MSG_MORE` when a body follows, so headers and body leave in the same packets),
    /// file-backed bodies with `sendfile`. Returns how many bytes went out, stopping at the
    /// first short write; an error only if nothing went out.
    pub(super) fn write_mixed(
        socket: &tokio::net::TcpStream,
        bufs: &[IoSlice<'_>],
    ) -> io::Result<usize> {
        let mut written = 0;
        let mut rest = bufs;
        while !rest.is_empty() {
            // The ordinary buffers up to the next file-backed body, which is looked up once.
            let mut body = None;
            let mut plain = 0;
            while plain < rest.len() {
                body = lookup(&rest[plain]);
                if body.is_some() {
                    break;
                }
                plain += 1;
            }
            let mut step = |sent: Result<usize, Errno>, wanted: usize| match sent {
                Ok(n) => {
                    written += n;
                    Ok(n == wanted)
                }
                Err(_) if written > 0 => Ok(false),
                Err(e) => Err(io::Error::from(e)),
            };
            if plain > 0 {
                let flags = if body.is_some() {
                    SendFlags::MORE | SendFlags::NOSIGNAL
                } else {
                    SendFlags::NOSIGNAL
                };
                let run = &rest[..plain];
                let wanted = run.iter().map(|b| b.len()).sum();
                if !step(send_plain(socket, run, flags), wanted)? {
                    return Ok(written);
                }
                rest = &rest[plain..];
            }
            if let Some((file, offset)) = body {
                let wanted = rest[0].len();
                if !step(send_from_file(socket, &file, offset, &rest[0]), wanted)? {
                    return Ok(written);
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
    use std::path::Path;
    use std::sync::Arc;

    use axum::body::Bytes;

    #[derive(Clone, Debug)]
    pub(super) struct Dir;

    impl Dir {
        pub(super) fn open(_: &Path) -> io::Result<Dir> {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "answers are sent from files on Linux only",
            ))
        }
    }

    pub(super) fn files_max() -> usize {
        0
    }

    pub(super) fn file_bytes() -> u64 {
        0
    }

    pub(super) fn back(_: &Dir, body: Bytes) -> Bytes {
        body
    }

    pub(super) fn may_be_file_backed(_: &[u8]) -> bool {
        false
    }

    pub(super) fn lookup(_: &[u8]) -> Option<(Arc<File>, u64)> {
        None
    }

    pub(super) fn set_sendfile(_: bool) {}

    /// Never called (no body is file-backed here); writes as the stream itself would.
    pub(super) fn write_mixed(
        socket: &tokio::net::TcpStream,
        bufs: &[IoSlice<'_>],
    ) -> io::Result<usize> {
        socket.try_write_vectored(bufs)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    fn body_files() -> (tempfile::TempDir, BodyFiles) {
        let dir = tempfile::tempdir().unwrap();
        let files = BodyFiles::open(dir.path()).expect("the test directory makes unnamed files");
        (dir, files)
    }

    #[test]
    fn small_bodies_stay_ordinary_and_large_ones_are_found_by_any_slice() {
        let (_dir, files) = body_files();
        let small = files.back(Bytes::from(vec![1; MIN_LEN - 1]));
        assert!(!is_file_backed(&small));

        let body = pattern(MIN_LEN * 3);
        let large = files.back(Bytes::from(body.clone()));
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

    #[test]
    fn memory_given_twice_is_registered_once() {
        static SHARED: [u8; MIN_LEN * 2] = [7; MIN_LEN * 2];
        let (_dir, files) = body_files();
        let first = files.back(Bytes::from_static(&SHARED));
        assert!(is_file_backed(&first));
        // The same memory, and memory inside it: copied, and the first stays registered.
        let again = files.back(Bytes::from_static(&SHARED));
        let inside = files.back(Bytes::from_static(&SHARED[1..]));
        drop(again);
        drop(inside);
        assert!(imp::is_registered(SHARED.as_ptr() as usize));
        drop(first);
        assert!(!imp::is_registered(SHARED.as_ptr() as usize));
    }

    #[test]
    fn a_body_whose_file_cannot_be_made_is_kept_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let files = BodyFiles::open(dir.path()).unwrap();
        // The directory gone (as a full disk, the file cannot be had): kept, copied when sent.
        drop(dir);
        let body = files.back(Bytes::from(pattern(MIN_LEN * 2)));
        assert_eq!(&body[..], &pattern(MIN_LEN * 2)[..]);
        assert!(!is_file_backed(&body));
    }

    #[test]
    fn a_directory_that_cannot_hold_files_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let not_a_directory = dir.path().join("file");
        std::fs::write(&not_a_directory, b"x").unwrap();
        assert!(BodyFiles::open(&not_a_directory).is_err());
        assert!(BodyFiles::open(&dir.path().join("file/below")).is_err());
    }

    #[test]
    fn memory_filesystems_and_the_last_free_space_are_not_used() {
        // /dev/shm is tmpfs on Linux (containers included).
        let in_memory = tempfile::tempdir_in("/dev/shm").unwrap();
        let refused = BodyFiles::open(in_memory.path()).unwrap_err();
        assert!(refused.to_string().contains("tmpfs"), "{refused}");

        let (_dir, files) = body_files();
        files.dir.room_for(MIN_LEN).unwrap();
        // A body that would eat into the space kept for the database and images.
        let full = files.dir.room_for(usize::MAX / 2).unwrap_err();
        assert_eq!(full.kind(), io::ErrorKind::StorageFull, "{full}");
    }

    #[test]
    fn sendfile_is_given_up_only_when_the_system_refuses_it() {
        use rustix::io::Errno;
        for unusable in [Errno::NOSYS, Errno::PERM, Errno::ACCESS, Errno::OPNOTSUPP] {
            assert!(imp::refused(unusable), "{unusable:?}");
        }
        // A file that cannot be read, a full, reset or closed connection: that write's business.
        for passing in [
            Errno::IO,
            Errno::BADF,
            Errno::INVAL,
            Errno::AGAIN,
            Errno::PIPE,
            Errno::CONNRESET,
            Errno::INTR,
        ] {
            assert!(!imp::refused(passing), "{passing:?}");
        }
    }

    #[test]
    fn body_files_are_capped_and_a_freed_slot_is_taken_again() {
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

    /// Headers, a body from a file the kernel will not send from, and a trailer, through one
    /// vectored write to a reader: the body is copied instead, and everything arrives in order.
    #[tokio::test]
    async fn a_body_whose_file_cannot_be_sent_is_copied_in_its_place() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

        let (_dir, files) = body_files();
        let body = pattern(MIN_LEN * 4);
        let backed = imp::back_unsendable(&files.dir, Bytes::from(body.clone()));
        assert!(is_file_backed(&backed));

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let reader = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut received = Vec::new();
            socket.read_to_end(&mut received).await.unwrap();
            received
        });
        let mut stream =
            ZeroCopyStream::new(tokio::net::TcpStream::connect(address).await.unwrap());
        let mut bufs = [
            IoSlice::new(b"head:"),
            IoSlice::new(&backed),
            IoSlice::new(b":tail"),
        ];
        let mut bufs = &mut bufs[..];
        while !bufs.is_empty() {
            let n = stream.write_vectored(bufs).await.unwrap();
            assert!(n > 0);
            IoSlice::advance_slices(&mut bufs, n);
        }
        stream.shutdown().await.unwrap();
        let expected = [b"head:".as_slice(), &body, b":tail"].concat();
        assert!(reader.await.unwrap() == expected, "the answer differs");
        assert!(
            is_file_backed(&backed),
            "one unsendable file does not turn sendfile off"
        );
    }
}

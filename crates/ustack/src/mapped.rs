//! A read-only mapping of part of a file (mmap(2)), lent whole to the
//! stack as a zero-copy send buffer by [`Runtime::sendfile`]: segments
//! and retransmissions read the file's pages, no user-space bounce
//! buffer. The one FFI module of this crate.
//!
//! [`Runtime::sendfile`]: crate::Runtime::sendfile
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// `len` bytes of a file from some offset, mapped read-only and private.
/// As with any mapping, the file must not shrink while the bytes are
/// being sent: a page past its new end faults (SIGBUS).
pub struct FileMap {
    base: *mut libc::c_void,
    map_len: usize,
    /// Where the asked-for bytes start in the mapping (the offset less
    /// the page-aligned one mmap takes).
    skip: usize,
    len: usize,
}

// SAFETY: the mapping is read-only memory owned by this value alone (no
// other pointer to it is handed out except through `&self`), so it may
// move to and be read from any thread.
unsafe impl Send for FileMap {}
// SAFETY: as above: shared access only reads.
unsafe impl Sync for FileMap {}

impl FileMap {
    /// Maps `len` (at least 1) bytes of `file` from `offset`.
    pub fn new(file: &File, offset: u64, len: usize) -> io::Result<FileMap> {
        if len == 0 {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
        let aligned = offset / page * page;
        let skip = (offset - aligned) as usize;
        let map_len = skip + len;
        let off = libc::off_t::try_from(aligned)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: a fresh private read-only mapping chosen by the kernel
        // (no fixed address, so nothing of ours is overwritten) of a
        // descriptor `file` keeps open for the call; the result is
        // checked against MAP_FAILED before use.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                off,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(FileMap {
            base,
            map_len,
            skip,
            len,
        })
    }
}

impl AsRef<[u8]> for FileMap {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `base..base+map_len` is a live readable mapping until
        // drop, and `skip + len == map_len`. Nothing in this process
        // writes it (PROT_READ); the caller of `new` keeps the file from
        // shrinking while it is mapped (see the type's docs).
        unsafe { std::slice::from_raw_parts((self.base as *const u8).add(self.skip), self.len) }
    }
}

impl Drop for FileMap {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `new` made; no slice of it
        // outlives `self` (they borrow it).
        unsafe {
            libc::munmap(self.base, self.map_len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn maps_the_bytes_at_an_unaligned_offset() {
        let path = std::env::temp_dir().join(format!("ustack-filemap-{}", std::process::id()));
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&data)
            .unwrap();
        let f = File::open(&path).unwrap();
        let m = FileMap::new(&f, 4099, 5000).unwrap();
        assert_eq!(m.as_ref(), &data[4099..9099]);
        drop(f);
        assert_eq!(
            m.as_ref()[0],
            data[4099],
            "the mapping outlives the descriptor"
        );
        let _ = std::fs::remove_file(&path);
    }
}

//! Errors a caller of the stack can see, as POSIX errno values.
//!
//! The names and numbers are Linux's (from the `libc` crate), so an
//! [`Errno`] converts losslessly to `std::io::Error`.

use core::fmt;

macro_rules! errnos {
    ($( $(#[$doc:meta])* $name:ident = $libc:ident ),* $(,)?) => {
        /// A POSIX error number.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[allow(clippy::upper_case_acronyms)]
        pub enum Errno {
            $( $(#[$doc])* $name, )*
        }

        impl Errno {
            /// All values, for tables and tests.
            pub const ALL: &'static [Errno] = &[$(Errno::$name),*];

            /// The libc number (Linux).
            pub const fn raw(self) -> i32 {
                match self { $( Errno::$name => libc::$libc, )* }
            }

            /// The symbolic name, e.g. `"EAGAIN"`.
            pub const fn name(self) -> &'static str {
                match self { $( Errno::$name => stringify!($libc), )* }
            }

            /// The `Errno` for a libc number, if it is one the stack uses.
            pub fn from_raw(raw: i32) -> Option<Errno> {
                match raw { $( x if x == libc::$libc => Some(Errno::$name), )* _ => None }
            }
        }
    };
}

errnos! {
    /// Resource temporarily unavailable (also EWOULDBLOCK).
    EAGAIN = EAGAIN,
    EADDRINUSE = EADDRINUSE,
    EADDRNOTAVAIL = EADDRNOTAVAIL,
    EAFNOSUPPORT = EAFNOSUPPORT,
    EALREADY = EALREADY,
    EBADF = EBADF,
    /// A queue is full: retry once completions are reaped (io_uring's EBUSY).
    EBUSY = EBUSY,
    /// The operation was cancelled.
    ECANCELED = ECANCELED,
    ECONNABORTED = ECONNABORTED,
    ECONNREFUSED = ECONNREFUSED,
    ECONNRESET = ECONNRESET,
    EDESTADDRREQ = EDESTADDRREQ,
    EEXIST = EEXIST,
    EHOSTUNREACH = EHOSTUNREACH,
    EINPROGRESS = EINPROGRESS,
    EINTR = EINTR,
    EINVAL = EINVAL,
    EISCONN = EISCONN,
    EMFILE = EMFILE,
    EMSGSIZE = EMSGSIZE,
    ENETUNREACH = ENETUNREACH,
    ENOBUFS = ENOBUFS,
    ENOENT = ENOENT,
    ENOMEM = ENOMEM,
    ENOPROTOOPT = ENOPROTOOPT,
    ENOTCONN = ENOTCONN,
    ENOTSOCK = ENOTSOCK,
    EOPNOTSUPP = EOPNOTSUPP,
    EPERM = EPERM,
    EPIPE = EPIPE,
    EPROTONOSUPPORT = EPROTONOSUPPORT,
    /// No such process (fcntl F_SETOWN to an owner that does not exist).
    ESRCH = ESRCH,
    ETIMEDOUT = ETIMEDOUT,
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({})",
            self.name(),
            std::io::Error::from_raw_os_error(self.raw())
        )
    }
}

impl std::error::Error for Errno {}

impl From<Errno> for std::io::Error {
    fn from(e: Errno) -> Self {
        std::io::Error::from_raw_os_error(e.raw())
    }
}

/// Result of a socket operation.
pub type Result<T> = core::result::Result<T, Errno>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;

    #[test]
    fn maps_to_libc_and_io() {
        assert_eq!(Errno::EAGAIN.raw(), libc::EWOULDBLOCK);
        assert_eq!(
            std::io::Error::from(Errno::EAGAIN).kind(),
            ErrorKind::WouldBlock
        );
        assert_eq!(
            std::io::Error::from(Errno::ECONNREFUSED).kind(),
            ErrorKind::ConnectionRefused
        );
        assert_eq!(
            std::io::Error::from(Errno::ECONNRESET).kind(),
            ErrorKind::ConnectionReset
        );
        assert_eq!(
            std::io::Error::from(Errno::EPIPE).kind(),
            ErrorKind::BrokenPipe
        );
        assert_eq!(
            std::io::Error::from(Errno::ETIMEDOUT).kind(),
            ErrorKind::TimedOut
        );
        assert_eq!(
            std::io::Error::from(Errno::EADDRINUSE).kind(),
            ErrorKind::AddrInUse
        );
        for &e in Errno::ALL {
            assert_eq!(Errno::from_raw(e.raw()), Some(e));
            assert_eq!(std::io::Error::from(e).raw_os_error(), Some(e.raw()));
        }
        assert_eq!(Errno::ECONNREFUSED.name(), "ECONNREFUSED");
    }
}

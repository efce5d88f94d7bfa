//! The one error type of the core. Every fallible function returns [`Result`]; the file an
//! error concerns is attached once, by [`Error::at`] (or [`Context::at`] on an `io::Result`),
//! where the path is known, and [`Display`](fmt::Display) prints it once: `PATH: message`.
//!
//! What went wrong decides the Python exception (mapped in `py/mod.rs`, nowhere else):
//! the operating system ([`Kind::Io`]: `FileNotFoundError`, `PermissionError`, else
//! `OSError`), a bad argument or setting ([`Kind::Invalid`]: `ValueError`), a stop asked for
//! by the caller ([`Kind::Interrupted`]), or a bug: a worker thread panicked ([`Kind::Panic`]:
//! `RuntimeError`, never `OSError`: there is nothing wrong with the user's files).

use std::any::Any;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug)]
pub enum Kind {
    /// An I/O error, or input that cannot be read as what its name says (`InvalidData`).
    Io(io::Error),
    /// A bad argument or setting.
    Invalid(String),
    /// The caller asked to stop (a progress callback said so, Ctrl-C).
    Interrupted,
    /// A worker thread panicked: an internal error.
    Panic(String),
}

#[derive(Debug)]
pub struct Error {
    kind: Kind,
    path: Option<PathBuf>,
}

impl Error {
    pub fn io(e: io::Error) -> Error {
        Error {
            kind: Kind::Io(e),
            path: None,
        }
    }

    pub fn invalid(msg: impl Into<String>) -> Error {
        Error {
            kind: Kind::Invalid(msg.into()),
            path: None,
        }
    }

    /// Input that is not what it should be (an `OSError` in Python, as a read error is).
    pub fn invalid_data(msg: impl Into<String>) -> Error {
        Error::io(io::Error::new(io::ErrorKind::InvalidData, msg.into()))
    }

    pub fn interrupted() -> Error {
        Error {
            kind: Kind::Interrupted,
            path: None,
        }
    }

    /// From a panic payload (`catch_unwind`'s error): keeps the panic message.
    pub fn panic(payload: Box<dyn Any + Send>) -> Error {
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into());
        Error {
            kind: Kind::Panic(msg),
            path: None,
        }
    }

    /// Attach the file this error concerns, unless one is attached already (the innermost
    /// caller knows the file best; the path is printed once).
    pub fn at(mut self, path: &Path) -> Error {
        if self.path.is_none() {
            self.path = Some(path.to_path_buf());
        }
        self
    }

    pub fn kind(&self) -> &Kind {
        &self.kind
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn is_interrupted(&self) -> bool {
        matches!(self.kind, Kind::Interrupted)
    }

    /// The kind's message, without the path.
    pub fn message(&self) -> String {
        match &self.kind {
            Kind::Io(e) => e.to_string(),
            Kind::Invalid(m) => m.clone(),
            Kind::Interrupted => "interrupted".into(),
            Kind::Panic(m) => format!("internal error in a worker thread: {m}"),
        }
    }
}

/// A copy for every thread that has to report the first error of a parallel run (an
/// `io::Error` is rebuilt from its kind and message).
impl Clone for Error {
    fn clone(&self) -> Error {
        let kind = match &self.kind {
            Kind::Io(e) => Kind::Io(io::Error::new(e.kind(), e.to_string())),
            Kind::Invalid(m) => Kind::Invalid(m.clone()),
            Kind::Interrupted => Kind::Interrupted,
            Kind::Panic(m) => Kind::Panic(m.clone()),
        };
        Error {
            kind,
            path: self.path.clone(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{}: {}", p.display(), self.message()),
            None => f.write_str(&self.message()),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::io(e)
    }
}

/// `.at(path)` on any result whose error converts into [`Error`].
pub trait Context<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|e| e.into().at(path))
    }
}

/// Run `f`, turning a panic into [`Kind::Panic`].
pub fn catch<R>(f: impl FnOnce() -> R) -> Result<R> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(Error::panic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_is_written_once() {
        let e = Error::io(io::Error::new(io::ErrorKind::NotFound, "no such file"))
            .at(Path::new("a/b.py"))
            .at(Path::new("outer"));
        assert_eq!(e.to_string(), "a/b.py: no such file");
        assert_eq!(e.clone().to_string(), e.to_string());
        let r: io::Result<()> = Err(io::Error::other("disk full"));
        assert_eq!(
            r.at(Path::new("x.bin")).unwrap_err().to_string(),
            "x.bin: disk full"
        );
    }

    #[test]
    fn panics_become_internal_errors() {
        let e = catch(|| panic!("boom {}", 1)).unwrap_err();
        assert!(matches!(e.kind(), Kind::Panic(m) if m == "boom 1"));
        assert_eq!(e.to_string(), "internal error in a worker thread: boom 1");
    }
}

//! The Linux watchdog device (`/dev/watchdog`): the host resets unless it is written to
//! within its timeout. It backs the fence process: if that process dies or freezes while
//! this member is primary, the device resets the host before the lease can expire.
//!
//! Opening the device starts it; writing any byte but `V` pets it; writing `V` and then
//! closing stops it (the "magic close"; a driver built with `nowayout` ignores it).

use super::error::FenceError;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `_IOWR('W', 6, int)`: set the timeout (seconds); the driver writes back the one it took.
const WDIOC_SETTIMEOUT: u32 = 0xC004_5706;

/// Checks, without opening it (opening would start it), that `path` is a character
/// device this process may write to.
pub fn check(path: &Path) -> Result<(), FenceError> {
    let err = |what: String| FenceError::Device {
        path: path.to_path_buf(),
        what,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if !meta.file_type().is_char_device() {
        return Err(err("is not a character device".to_string()));
    }
    nix::unistd::access(path, nix::unistd::AccessFlags::W_OK)
        .map_err(|e| err(format!("not writable: {e}")))?;
    Ok(())
}

/// An open, running watchdog device.
#[derive(Debug)]
pub struct Device {
    file: File,
    path: PathBuf,
    /// The timeout the driver accepted.
    pub timeout: Duration,
    /// When it was last petted (fence clock).
    pub last_pet: Duration,
}

impl Device {
    /// Opens (and so starts) the device at `now` and asks for `timeout` (whole seconds).
    /// On failure to set the timeout the device is stopped again with the magic close.
    pub fn open(path: &Path, timeout: Duration, now: Duration) -> Result<Device, FenceError> {
        let err = |what: String| FenceError::Device {
            path: path.to_path_buf(),
            what,
        };
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| err(format!("cannot open: {e}")))?;
        let mut secs: libc::c_int = libc::c_int::try_from(timeout.as_secs().max(1))
            .map_err(|_| err(format!("timeout {timeout:?} is too long")))?;
        // SAFETY: WDIOC_SETTIMEOUT reads and writes one int through the pointer, which
        // points to a live local; the fd is open for the duration of the call.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), WDIOC_SETTIMEOUT as _, &mut secs) };
        let dev = Device {
            file,
            path: path.to_path_buf(),
            timeout: Duration::from_secs(u64::try_from(secs.max(1)).unwrap_or(1)),
            last_pet: now,
        };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            dev.stop();
            return Err(err(format!("cannot set the timeout to {timeout:?}: {e}")));
        }
        Ok(dev)
    }

    /// When the device fires unless petted again.
    pub fn fires_at(&self) -> Duration {
        self.last_pet + self.timeout
    }

    /// Pets the device at `now`.
    pub fn pet(&mut self, now: Duration) -> Result<(), FenceError> {
        self.file.write_all(b"1").map_err(|e| FenceError::Device {
            path: self.path.clone(),
            what: format!("cannot pet: {e}"),
        })?;
        self.last_pet = now;
        Ok(())
    }

    /// Stops the device (magic close) and closes it.
    pub fn stop(mut self) {
        if let Err(e) = self.file.write_all(b"V") {
            tracing::warn!(
                "watchdog device {}: magic close failed ({e}); it may still reset the host",
                self.path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_device_is_reported_by_name() {
        let e = check(Path::new("/nonexistent/watchdog"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/watchdog"), "{e}");
    }

    #[test]
    fn a_regular_file_is_not_a_device() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let e = check(f.path()).unwrap_err().to_string();
        assert!(e.contains("not a character device"), "{e}");
    }
}

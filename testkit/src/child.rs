//! A child process that cannot outlive the value holding it.

use std::io;
use std::ops::{Deref, DerefMut};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How often [`ChildGuard::wait_timeout`] looks whether the child has exited.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// A running child process, killed (SIGKILL) and reaped when the guard is dropped, so no test
/// leaves a server, a client or a store running behind it, however it ends.
///
/// It dereferences to the [`Child`], for its pipes, its id and `try_wait`.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    /// The child leads a process group of its own (`Command::process_group(0)`): kill the
    /// whole group (e.g. node and the Chromium it started), not only the child.
    group: bool,
}

impl ChildGuard {
    /// Guards `child`.
    pub fn new(child: Child) -> Self {
        ChildGuard {
            child,
            group: false,
        }
    }

    /// Guards `child`, which was started as the leader of a process group of its own
    /// (`Command::process_group(0)`): killing it kills the whole group.
    pub fn group_leader(child: Child) -> Self {
        ChildGuard { child, group: true }
    }

    /// Whether the child is still running (neither exited nor killed).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the child with SIGKILL (its group too, for a group leader) and reaps it; its exit
    /// status. Harmless if it has exited already.
    pub fn kill(&mut self) -> io::Result<ExitStatus> {
        if self.group {
            // `std` kills one process; `kill(1)` takes a whole group without unsafe code.
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--"])
                .arg(format!("-{}", self.child.id()))
                .stderr(Stdio::null())
                .status();
        }
        // Fails only if the child has already exited: reaping below says how.
        let _ = self.child.kill();
        self.child.wait()
    }

    /// Waits for the child to exit, at most `timeout`: its status, or `None` if it was still
    /// running and has been killed (see [`ChildGuard::kill`]).
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() > deadline {
                self.kill()?;
                return Ok(None);
            }
            thread::sleep(POLL_EVERY);
        }
    }
}

impl Deref for ChildGuard {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.child
    }
}

impl DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

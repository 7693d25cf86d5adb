//! Starts child processes from one dedicated thread that lives as long as its owner, so
//! the children can be tied to it with `PR_SET_PDEATHSIG`: if the test process dies
//! (even by `kill -9`), the kernel kills the children too and no etcd is left behind.
//! (The death signal fires when the *thread* that forked exits, which is why test
//! threads must not fork the children themselves.)

use nix::sys::signal::Signal;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::thread::JoinHandle;

type Request = (Command, mpsc::Sender<io::Result<Child>>);

/// The spawning thread; dropping it ends the thread (after the owner killed its children).
pub(crate) struct Spawner {
    tx: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl Spawner {
    pub(crate) fn new() -> io::Result<Spawner> {
        let (tx, rx) = mpsc::channel::<Request>();
        let thread = std::thread::Builder::new()
            .name("testkit-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let parent = std::process::id();
                    // SAFETY: the closure only makes async-signal-safe syscalls (prctl,
                    // getppid) and allocates nothing on its success path.
                    unsafe {
                        cmd.pre_exec(move || {
                            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
                                .map_err(io::Error::from)?;
                            if nix::unistd::getppid().as_raw() as u32 != parent {
                                return Err(io::Error::other("parent exited during spawn"));
                            }
                            Ok(())
                        });
                    }
                    let _ = reply.send(cmd.spawn());
                }
            })?;
        Ok(Spawner {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Start `cmd` as a child tied to the spawner thread.
    pub(crate) fn spawn(&self, cmd: Command) -> io::Result<Child> {
        let (reply_tx, reply_rx) = mpsc::channel();
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| io::Error::other("spawner stopped"))?;
        tx.send((cmd, reply_tx))
            .map_err(|_| io::Error::other("spawner thread is gone"))?;
        reply_rx
            .recv()
            .map_err(|_| io::Error::other("spawner thread is gone"))?
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

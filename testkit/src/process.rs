//! A child process that is killed when dropped, so a failing test leaves nothing behind.

use std::process::{Child, Command, Stdio};

pub struct Proc {
    pub name: &'static str,
    child: Option<Child>,
}

impl Proc {
    pub fn spawn(name: &'static str, cmd: &mut Command) -> std::io::Result<Proc> {
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("starting {name}: {e}")))?;
        Ok(Proc {
            name,
            child: Some(child),
        })
    }

    /// Kills the process (SIGKILL: nothing gets a chance to flush) and waits for it.
    pub fn kill(&mut self) -> std::io::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait()?;
        }
        Ok(())
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// The process id, while it runs.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

//! Mounting a [`LazyFs`] and cutting its power.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fuser::{BackgroundSession, Config, MountOption, SessionACL};

use crate::fs::{BrokenFs, CrashPlan, Image, LazyFs, Shared};

/// Set to `1` to skip every test that mounts (where FUSE is not available).
pub const SKIP_ENV: &str = "WALDEN_LAZYFS_SKIP";

/// A mounted [`LazyFs`]; unmounted when dropped.
pub struct Mounted {
    session: Option<BackgroundSession>,
    shared: Arc<Shared>,
    path: PathBuf,
}

impl Mounted {
    /// Mounts a file system holding `image` (durable and volatile alike) at `path`, an
    /// existing empty directory.
    ///
    /// The options: no `writeback_cache` (fuser does not ask for it), so every `write`
    /// reaches the server before the call returns; no `default_permissions`; one server
    /// thread, so operations are answered in the order they come; zero TTLs for entries and
    /// attributes.
    pub fn new(path: &Path, image: Image, broken: Option<BrokenFs>) -> io::Result<Self> {
        // Said first and plainly: the usual reason a mount fails on a CI runner.
        if let Err(e) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
        {
            return Err(io::Error::new(
                e.kind(),
                format!(
                    "cannot open /dev/fuse ({e}): this test mounts a FUSE file system; run it \
                     where /dev/fuse exists and may be opened (a container needs \
                     --device /dev/fuse), or set {SKIP_ENV}=1 to skip it"
                ),
            ));
        }
        let shared = Shared::new(image, broken);
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("walden-lazyfs".into()),
            MountOption::Subtype("lazyfs".into()),
            MountOption::RW,
            MountOption::NoAtime,
        ];
        config.acl = SessionACL::Owner;
        config.n_threads = Some(1);
        let session =
            fuser::spawn_mount(LazyFs::new(Arc::clone(&shared)), path, &config).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot mount the FUSE file system at {} ({e}): this test needs \
                         /dev/fuse and the right to mount (root, or fusermount3); set \
                         {SKIP_ENV}=1 to skip it",
                        path.display()
                    ),
                )
            })?;
        Ok(Self {
            session: Some(session),
            shared,
            path: path.to_path_buf(),
        })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state shared with the server (operation count, crash point, images).
    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Cuts the power: freezes the file system (every further operation `EIO`), unmounts it
    /// and returns the image `plan` leaves. The caller must have closed its files first
    /// (an open descriptor keeps the mount busy).
    pub fn crash(mut self, plan: CrashPlan) -> io::Result<Image> {
        self.shared.freeze();
        let image = self.shared.crash_image(plan);
        self.unmount()?;
        Ok(image)
    }

    /// Unmounts, and waits for the server thread to end.
    pub fn unmount(&mut self) -> io::Result<()> {
        match self.session.take().map(BackgroundSession::umount_and_join) {
            // The server read a request (a late `release`, a `forget`) while the unmount tore
            // the connection down: the kernel answers that read `ECONNABORTED`. The mount is
            // gone all the same, and nothing the test looks at depended on that request.
            Some(Err(e)) if e.raw_os_error() == Some(libc::ECONNABORTED) => Ok(()),
            Some(r) => r,
            None => Ok(()),
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = self.unmount();
    }
}

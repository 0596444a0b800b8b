//! Opening a log directory below a preopen: create each missing component and make its entry
//! durable before anything is written inside it.

use crate::error::WasiError;

/// What [`open_path`] needs of a directory handle (a WASI `descriptor` in the adapter, a fake in
/// the tests, which run on the host where the `wasi` bindings do not exist).
pub(crate) trait DirHandle: Sized {
    /// Creates the subdirectory `name`; one that already exists is not an error.
    fn create_dir(&self, name: &str) -> Result<(), WasiError>;
    /// Opens the subdirectory `name`.
    fn open_dir(&self, name: &str) -> Result<Self, WasiError>;
    /// Makes the entries of this directory durable (`fsync` of the directory).
    fn sync(&self) -> Result<(), WasiError>;
}

/// Opens the directory `path` (components separated by `/`) below `root`, creating every
/// missing component, and syncs the directory that holds each component's entry, top down.
///
/// A log's [`Storage::sync_dir`](walden_core::Storage::sync_dir) syncs the log directory
/// itself, which makes the segments' names durable but not the log directory's own entry in
/// its parent: without the parent's sync, a power cut can take the directory, and every record
/// acknowledged in it, away. The parent is synced even when the component already existed: an
/// earlier process may have created it and died before syncing its parent (walden-std does
/// the same).
///
/// A `..` component is refused before anything is created ([`StorageErrorKind::PermissionDenied`],
/// code `parent-component`): `a/..` would otherwise create and sync `a`, then put the log in the
/// preopen itself, among whatever else lives there, and `..` at the top reaches for the
/// preopen's parent, which a WASI host refuses only after the components before it exist.
/// A path that starts with `/` is refused the same way (code `absolute-path`): `path` is
/// always below the preopen, and `/data/wal` under the preopen `.` would otherwise quietly
/// become `./data/wal` (name the preopen `/data` and the path `wal` instead).
///
/// [`StorageErrorKind::PermissionDenied`]: walden_core::StorageErrorKind::PermissionDenied
pub(crate) fn open_path<D: DirHandle>(root: D, path: &str) -> Result<D, WasiError> {
    if path.starts_with('/') {
        return Err(WasiError::new(
            "open-dir",
            walden_core::StorageErrorKind::PermissionDenied,
            "absolute-path",
        ));
    }
    if path.split('/').any(|c| c == "..") {
        return Err(WasiError::new(
            "open-dir",
            walden_core::StorageErrorKind::PermissionDenied,
            "parent-component",
        ));
    }
    let mut dir = root;
    for name in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
        dir.create_dir(name)?;
        dir.sync()?;
        dir = dir.open_dir(name)?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use core::cell::RefCell;
    use std::rc::Rc;

    use walden_core::StorageErrorKind;

    use super::*;

    /// A directory handle that logs every call as `<op> <dir path>[ <name>]`.
    #[derive(Clone)]
    struct Fake {
        path: String,
        log: Rc<RefCell<Vec<String>>>,
        fail_sync: bool,
    }

    impl DirHandle for Fake {
        fn create_dir(&self, name: &str) -> Result<(), WasiError> {
            self.log
                .borrow_mut()
                .push(format!("create {} {name}", self.path));
            Ok(())
        }

        fn open_dir(&self, name: &str) -> Result<Self, WasiError> {
            self.log
                .borrow_mut()
                .push(format!("open {} {name}", self.path));
            Ok(Self {
                path: format!("{}/{name}", self.path),
                ..self.clone()
            })
        }

        fn sync(&self) -> Result<(), WasiError> {
            self.log.borrow_mut().push(format!("sync {}", self.path));
            if self.fail_sync {
                return Err(WasiError::from_code("sync", "io"));
            }
            Ok(())
        }
    }

    fn fake(fail_sync: bool) -> Fake {
        Fake {
            path: "/data".into(),
            log: Rc::default(),
            fail_sync,
        }
    }

    /// The log directory's entry is made durable by syncing its parent (the preopen), before
    /// the log directory is handed out; `sync_dir` on the log directory cannot do that.
    #[test]
    fn open_path_syncs_the_parent_of_the_log_directory() {
        let root = fake(false);
        let log = Rc::clone(&root.log);
        let dir = open_path(root, "wal").unwrap();
        assert_eq!(dir.path, "/data/wal");
        assert_eq!(
            *log.borrow(),
            ["create /data wal", "sync /data", "open /data wal"]
        );
    }

    /// Nested components are created one by one, each parent synced before descending.
    #[test]
    fn open_path_creates_and_syncs_each_component_top_down() {
        let root = fake(false);
        let log = Rc::clone(&root.log);
        let dir = open_path(root, "a//b/./c/").unwrap();
        assert_eq!(dir.path, "/data/a/b/c");
        assert_eq!(
            *log.borrow(),
            [
                "create /data a",
                "sync /data",
                "open /data a",
                "create /data/a b",
                "sync /data/a",
                "open /data/a b",
                "create /data/a/b c",
                "sync /data/a/b",
                "open /data/a/b c",
            ]
        );
    }

    /// A `..` component is refused before any directory is created or synced.
    #[test]
    fn open_path_refuses_parent_components_before_creating_anything() {
        for path in ["..", "../wal", "a/..", "a/../b", "a/b/../../.."] {
            let root = fake(false);
            let log = Rc::clone(&root.log);
            let err = open_path(root, path).map(|_| ()).unwrap_err();
            assert_eq!(err.code(), "parent-component", "{path}");
            assert_eq!(
                walden_core::StorageError::kind(&err),
                StorageErrorKind::PermissionDenied
            );
            assert!(log.borrow().is_empty(), "{path}: {:?}", log.borrow());
        }
    }

    /// A path starting with `/` is refused before anything is created: it is not below the
    /// preopen, whatever the leading slash suggests.
    #[test]
    fn open_path_refuses_absolute_paths_before_creating_anything() {
        for path in ["/", "/wal", "//wal", "/data/wal"] {
            let root = fake(false);
            let log = Rc::clone(&root.log);
            let err = open_path(root, path).map(|_| ()).unwrap_err();
            assert_eq!(err.code(), "absolute-path", "{path}");
            assert!(log.borrow().is_empty(), "{path}: {:?}", log.borrow());
        }
    }

    /// A failed sync of the parent is an error: the directory is not handed out.
    #[test]
    fn open_path_fails_when_the_parent_sync_fails() {
        let root = fake(true);
        let err = open_path(root, "wal").map(|_| ()).unwrap_err();
        assert_eq!(err.op(), "sync");
        assert_eq!(walden_core::StorageError::kind(&err), StorageErrorKind::Io);
    }
}

//! The WASI calls the host shadows: every call that decides what survives a power loss.
//!
//! `sync-data` and `sync` (of a file or of a directory), `open-at` (which creates files),
//! `create-directory-at`, `unlink-file-at` and `set-size` are replaced by versions that do the real
//! work, keep the store's [`DurableImage`](crate::durable::DurableImage) up to date, and pass their
//! crash points to the store's [`Cutter`](crate::points::Cutter), which may cut the power there.
//!
//! In the crash loop the real `fdatasync`/`fsync` is skipped (`HostState::real_sync`): the power
//! loss is simulated from the image, so what the disk really holds plays no part, and thousands of
//! real syncs would only cost time.
//!
//! `write` is shadowed too, only so that a test can make the host refuse chosen writes
//! ([`FailWrites`](crate::runner::FailWrites)); otherwise it is wasmtime's.

use std::fs::File;

use anyhow::Result;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemView as _};
use wasmtime_wasi::p2::FsError;
use wasmtime_wasi::p2::bindings::sync::filesystem::types::{
    DescriptorFlags, ErrorCode, HostDescriptor, OpenFlags, PathFlags,
};

use crate::points::Point;
use crate::runner::{GUEST_DATA_DIR, HostState};

/// The interface whose functions are shadowed; wasmtime's linker serves older 0.2.x imports
/// from it by semver.
const FILESYSTEM_TYPES: &str = "wasi:filesystem/types@0.2.12";

/// What a shadowed call returns: the outer error traps the guest (a power cut), the inner one
/// is the WASI error code the guest sees.
type Call<T> = wasmtime::Result<(Result<T, ErrorCode>,)>;

/// Replaces the durability-deciding `descriptor` methods with the hooked versions.
pub(crate) fn install(linker: &mut Linker<HostState>) -> Result<()> {
    linker.allow_shadowing(true);
    let mut types = linker.instance(FILESYSTEM_TYPES)?;
    types.func_wrap(
        "[method]descriptor.sync-data",
        |mut store: StoreContextMut<'_, HostState>, (fd,): (Resource<Descriptor>,)| {
            sync(store.data_mut(), fd)
        },
    )?;
    types.func_wrap(
        "[method]descriptor.sync",
        |mut store: StoreContextMut<'_, HostState>, (fd,): (Resource<Descriptor>,)| {
            sync(store.data_mut(), fd)
        },
    )?;
    types.func_wrap(
        "[method]descriptor.open-at",
        |mut store: StoreContextMut<'_, HostState>,
         (fd, path_flags, path, open_flags, flags): (
            Resource<Descriptor>,
            PathFlags,
            String,
            OpenFlags,
            DescriptorFlags,
        )| open_at(store.data_mut(), fd, path_flags, path, open_flags, flags),
    )?;
    types.func_wrap(
        "[method]descriptor.create-directory-at",
        |mut store: StoreContextMut<'_, HostState>, (fd, path): (Resource<Descriptor>, String)| {
            create_directory_at(store.data_mut(), fd, path)
        },
    )?;
    types.func_wrap(
        "[method]descriptor.unlink-file-at",
        |mut store: StoreContextMut<'_, HostState>, (fd, path): (Resource<Descriptor>, String)| {
            unlink_file_at(store.data_mut(), fd, path)
        },
    )?;
    types.func_wrap(
        "[method]descriptor.set-size",
        |mut store: StoreContextMut<'_, HostState>, (fd, size): (Resource<Descriptor>, u64)| {
            set_size(store.data_mut(), fd, size)
        },
    )?;
    types.func_wrap(
        "[method]descriptor.write",
        |mut store: StoreContextMut<'_, HostState>,
         (fd, bytes, offset): (Resource<Descriptor>, Vec<u8>, u64)| {
            write(store.data_mut(), fd, bytes, offset)
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// A WASI error code for the guest, or a trap for anything else.
fn code<T>(result: Result<T, FsError>) -> Call<T> {
    match result {
        Ok(value) => Ok((Ok(value),)),
        Err(e) => Ok((Err(e.downcast()?.into()),)),
    }
}

/// The path below the preopen of the file `fd` refers to: remembered from `open-at`, else
/// found by inode.
fn name_of(state: &mut HostState, fd: &Resource<Descriptor>) -> String {
    if let Some(name) = state.opened.get(&fd.rep()) {
        return name.clone();
    }
    match state.table().get(fd) {
        Ok(Descriptor::File(file)) => {
            let file = file.file.clone();
            state.image.name_of(&file)
        }
        _ => String::new(),
    }
}

/// The path below the preopen (ending in `/`, `""` for the preopen) of the directory `fd`
/// refers to, found by inode (handles are reused, so a remembered one could be stale); `None`
/// if it is not a directory of the tree.
fn dir_of(state: &mut HostState, fd: &Resource<Descriptor>) -> Option<String> {
    match state.table().get(fd) {
        Ok(Descriptor::Dir(dir)) => {
            let dir = dir.dir.clone();
            state.image.path_of(&dir)
        }
        _ => None,
    }
}

/// How a directory is named in crash reports: by its path, the preopen by its guest path.
fn dir_label(dir: &str) -> String {
    if dir.is_empty() {
        GUEST_DATA_DIR.to_owned()
    } else {
        dir.to_owned()
    }
}

fn sync(state: &mut HostState, fd: Resource<Descriptor>) -> Call<()> {
    let Ok(descriptor) = state.table().get(&fd) else {
        return Ok((Err(ErrorCode::BadDescriptor),));
    };
    match descriptor {
        Descriptor::File(file) => {
            let file = file.file.clone();
            let name = name_of(state, &fd);
            state.cutter.pass(Point::BeforeSync, &name)?;
            if state.real_sync && file.sync_data().is_err() {
                return Ok((Err(ErrorCode::Io),));
            }
            state.image.file_synced(&name);
            state.cutter.pass(Point::AfterSync, &name)?;
        }
        Descriptor::Dir(_) => {
            // A directory the image cannot place (outside the tree, or no longer in it) holds
            // none of the tree's entries: its sync makes none of them durable. Counting it as a
            // sync of the preopen (as this once did) would make the preopen's new entries
            // durable without one, hiding a missing sync of the right directory. It is synced
            // for real by wasmtime (the directory it is, not the preopen) and is no crash point:
            // nothing the power-loss model tracks is at stake.
            let Some(dir) = dir_of(state, &fd) else {
                if !state.real_sync {
                    return Ok((Ok(()),));
                }
                let synced = state.filesystem().sync(fd);
                return code(synced);
            };
            let label = dir_label(&dir);
            state.cutter.pass(Point::BeforeDirSync, &label)?;
            // The descriptor's own handle may be an `O_PATH` one, which cannot be synced
            // (wasmtime reopens it for the same reason): open the directory by its path.
            if state.real_sync
                && File::open(state.image.dir.join(&dir))
                    .and_then(|dir| dir.sync_all())
                    .is_err()
            {
                return Ok((Err(ErrorCode::Io),));
            }
            state.image.dir_synced(&dir);
            state.cutter.pass(Point::AfterDirSync, &label)?;
        }
    }
    Ok((Ok(()),))
}

fn open_at(
    state: &mut HostState,
    fd: Resource<Descriptor>,
    path_flags: PathFlags,
    path: String,
    open_flags: OpenFlags,
    flags: DescriptorFlags,
) -> Call<Resource<Descriptor>> {
    // The guest names one entry of a directory of the tree at a time; a path with a separator
    // is not one of its files.
    let base = dir_of(state, &fd).filter(|_| !path.contains('/'));
    let full = format!("{}{path}", base.as_deref().unwrap_or_default());
    let existed = state.image.dir.join(&full).exists();
    let opened = state
        .filesystem()
        .open_at(fd, path_flags, path, open_flags, flags);
    let created = opened.is_ok() && open_flags.contains(OpenFlags::CREATE) && !existed;
    if let (Ok(new), Some(_)) = (&opened, &base) {
        state.opened.insert(new.rep(), full.clone());
    }
    if created && base.is_some() {
        state.image.created(&full);
        if let Err(cut) = state.cutter.pass(Point::AfterCreate, &full) {
            // Close the new descriptor before the trap; the file stays.
            if let Ok(new) = opened {
                let _ = state.table().delete(new);
            }
            return Err(cut);
        }
    }
    code(opened)
}

/// Like a file's creation, a directory's is a crash point: its name is not durable until its
/// parent is synced (`walden-wasi`'s `open_dir` does that before using it).
fn create_directory_at(state: &mut HostState, fd: Resource<Descriptor>, path: String) -> Call<()> {
    let base = dir_of(state, &fd).filter(|_| !path.contains('/'));
    let created = state.filesystem().create_directory_at(fd, path.clone());
    if let (Ok(()), Some(base)) = (&created, base) {
        state
            .cutter
            .pass(Point::AfterCreate, &format!("{base}{path}/"))?;
    }
    code(created)
}

fn unlink_file_at(state: &mut HostState, fd: Resource<Descriptor>, path: String) -> Call<()> {
    let base = dir_of(state, &fd).filter(|_| !path.contains('/'));
    let removed = state.filesystem().unlink_file_at(fd, path.clone());
    if let (Ok(()), Some(base)) = (&removed, base) {
        state
            .cutter
            .pass(Point::AfterRemove, &format!("{base}{path}"))?;
    }
    code(removed)
}

/// A write, unless the run refuses it ([`FailWrites`](crate::runner::FailWrites)): not a
/// crash point (the bytes are volatile until a sync).
fn write(
    state: &mut HostState,
    fd: Resource<Descriptor>,
    bytes: Vec<u8>,
    offset: u64,
) -> Call<u64> {
    if let Some(fail) = state.fail_writes {
        let end = offset.saturating_add(bytes.len() as u64);
        if end > fail.from && name_of(state, &fd) == fail.file {
            return Ok((Err(ErrorCode::Io),));
        }
    }
    code(state.filesystem().write(fd, bytes, offset))
}

fn set_size(state: &mut HostState, fd: Resource<Descriptor>, size: u64) -> Call<()> {
    let name = name_of(state, &fd);
    let resized = state.filesystem().set_size(fd, size);
    if resized.is_ok() && !name.is_empty() {
        state.image.resized(&name, size);
        state.cutter.pass(Point::AfterTruncate, &name)?;
    }
    code(resized)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use wasmtime_wasi::p2::bindings::sync::filesystem::preopens::Host as _;
    use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
    use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

    use super::*;
    use crate::durable::DurableImage;
    use crate::points::Cutter;

    /// A run's state over the tree `data` (preopened as `/data`), with `other`, a directory
    /// outside it, preopened as `/other`; and the two preopens' descriptors.
    fn state(
        data: &std::path::Path,
        other: &std::path::Path,
    ) -> (HostState, Resource<Descriptor>, Resource<Descriptor>) {
        let mut builder = WasiCtxBuilder::new();
        builder.allow_blocking_current_thread(true);
        for (host, guest) in [(data, GUEST_DATA_DIR), (other, "/other")] {
            builder
                .preopened_dir(host, guest, FsPerms::ReadWrite)
                .unwrap();
        }
        let mut state = HostState::new(
            builder.build(),
            DurableImage::of(data).unwrap(),
            Cutter::new(None, MemoryOutputPipe::new(64)),
            true,
        );
        let mut dirs = state.filesystem().get_directories().unwrap();
        let find = |dirs: &mut Vec<(Resource<Descriptor>, String)>, name: &str| {
            let at = dirs.iter().position(|(_, path)| path == name).unwrap();
            dirs.remove(at).0
        };
        let data_fd = find(&mut dirs, GUEST_DATA_DIR);
        let other_fd = find(&mut dirs, "/other");
        (state, data_fd, other_fd)
    }

    /// Syncing a directory outside the tree makes none of the tree's entries durable: a new
    /// directory in `/data` stays at stake until `/data` itself is synced (the hook used to
    /// count any directory it could not place as a sync of `/data`).
    #[test]
    fn a_sync_of_a_directory_outside_the_tree_is_not_a_sync_of_the_preopen() {
        let tmp = tempfile::tempdir().unwrap();
        let (data, other) = (tmp.path().join("data"), tmp.path().join("other"));
        fs::create_dir(&data).unwrap();
        fs::create_dir(&other).unwrap();
        let (mut state, data_fd, other_fd) = state(&data, &other);
        fs::create_dir(data.join("wal")).unwrap();
        assert!(!state.image.is_durable_name("wal/"));

        let (synced,) = sync(&mut state, other_fd).unwrap();
        assert!(synced.is_ok(), "{synced:?}");
        assert!(
            !state.image.is_durable_name("wal/"),
            "a sync of /other made /data's new entry durable"
        );
        assert_eq!(state.image.dir_syncs, 0);

        // The preopen's own sync does.
        let (synced,) = sync(&mut state, data_fd).unwrap();
        assert!(synced.is_ok(), "{synced:?}");
        assert!(state.image.is_durable_name("wal/"));
        assert_eq!(state.image.dir_syncs, 1);
    }
}

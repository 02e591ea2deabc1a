//! Owner-only modes for everything openkvs keeps in its data directory: 0700 directories, 0600
//! files (the catalog and its SQLite `-wal` / `-shm`, segment files). Video and the catalog are
//! private to the server's user, like `session.key`. Modes are set explicitly after creating, so
//! no umask widens (or narrows) them; a directory or catalog file left looser by an older version
//! is tightened at open, with a warning.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

/// Mode of the data directory and every directory in it.
pub(crate) const DIR_MODE: u32 = 0o700;
/// Mode of every file in the data directory.
pub(crate) const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) owner-only; an existing `dir` is tightened to [`DIR_MODE`].
pub(crate) fn create_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        match fs::metadata(dir) {
            Ok(_) => tighten(dir, DIR_MODE),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(DIR_MODE)
                    .create(dir)?;
                set_mode(dir, DIR_MODE)
            }
            Err(e) => Err(e),
        }
    }
    #[cfg(not(unix))]
    fs::create_dir_all(dir)
}

/// Options that create a file owner-only; call [`created`] on the new file.
pub(crate) fn file_options() -> OpenOptions {
    #[allow(unused_mut)]
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    options
}

/// Sets a file just made with [`file_options`] to exactly [`FILE_MODE`], whatever the umask.
pub(crate) fn created(file: &File) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(FILE_MODE))
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        Ok(())
    }
}

/// Sets `path` to `mode` if it allows more than that (group or other bits), with a warning.
pub(crate) fn tighten(path: &Path, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let current = fs::metadata(path)?.permissions().mode() & 0o777;
        if current & !mode != 0 {
            set_mode(path, mode)?;
            tracing::warn!(
                path = %path.display(),
                from = format!("{current:o}"),
                to = format!("{mode:o}"),
                "tightened permissions: openkvs keeps its data owner-only"
            );
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

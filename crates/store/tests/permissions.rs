//! Everything openkvs keeps in its data directory is owner-only — 0700 directories, 0600 files,
//! SQLite's `-wal` / `-shm` included — whatever the umask, and what an older version left looser is
//! tightened at open. Its own test binary: it changes the process's umask.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use store::{MediaStore, StreamId};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every directory and file below `dir`, and `dir` itself.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_owned()];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(tree(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn assert_owner_only(data: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for path in tree(data) {
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(
            mode(&path),
            expected,
            "{}: {:o}",
            path.display(),
            mode(&path)
        );
        names.push(path.strip_prefix(data).unwrap().display().to_string());
    }
    names
}

#[tokio::test]
async fn the_data_directory_is_owner_only_whatever_the_umask() {
    // The most permissive umask: no mode may come from it.
    rustix::process::umask(rustix::fs::Mode::empty());
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (_catalog, media) = store::embedded::open(&data).await.unwrap();
    media
        .append(StreamId(1), vec![Bytes::from_static(b"frame")])
        .await
        .unwrap();
    media.sync().await.unwrap();
    let names = assert_owner_only(&data);
    for expected in [
        "",
        "catalog.sqlite3",
        "catalog.sqlite3-wal",
        "catalog.sqlite3-shm",
        "media",
        "media/1",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    assert!(names.iter().any(|n| n.ends_with(".seg")), "{names:?}");
}

#[tokio::test]
async fn a_data_directory_left_readable_by_others_is_tightened_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (_catalog, _media) = store::embedded::open(&data).await.unwrap();
    // As an older openkvs left them (0755 / 0644).
    for path in tree(&data) {
        let loose = if path.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(loose)).unwrap();
    }
    let (_again, _media) = store::embedded::open(&data).await.unwrap();
    let names = assert_owner_only(&data);
    assert!(
        names.iter().any(|n| n == "catalog.sqlite3-wal"),
        "{names:?}"
    );
}

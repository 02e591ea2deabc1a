//! A private PostgreSQL 15 cluster per test binary (initdb + pg_ctl, unix socket only, in a
//! temporary directory), stopped when the process exits. PostgreSQL refuses to run as root, so as
//! root the cluster runs as `nobody` (`runuser`). Without the PostgreSQL binaries the tests fail:
//! scripts/test.sh installs `postgresql-15`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// Only names the socket file; nothing listens on TCP.
const PORT: u16 = 5432;
/// The user the cluster runs as when the tests run as root.
const UNPRIVILEGED: &str = "nobody";

/// One cluster per test binary, stopped at process exit.
pub struct Cluster {
    root: PathBuf,
    data: PathBuf,
    socket_dir: PathBuf,
    as_nobody: bool,
}

impl Cluster {
    fn start() -> Cluster {
        let initdb = Path::new(PG_BIN).join("initdb");
        assert!(
            initdb.exists(),
            "PostgreSQL 15 is not installed ({} is missing): the PostgreSQL catalog's conformance \
             tests need it. Install it with `apt-get install postgresql-15` (scripts/test.sh does).",
            initdb.display()
        );
        let as_nobody = rustix::process::geteuid().is_root();
        let root = std::env::temp_dir().join(format!("openkvs-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let (data, socket_dir) = (root.join("data"), root.join("sock"));
        for d in [&data, &socket_dir] {
            std::fs::create_dir(d).unwrap();
        }
        if as_nobody {
            // The cluster's user must reach and own its directories.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
            let (uid, gid) = (id_of("-u"), id_of("-g"));
            for d in [&data, &socket_dir] {
                std::os::unix::fs::chown(d, Some(uid), Some(gid)).unwrap();
            }
        }
        let cluster = Cluster {
            root,
            data,
            socket_dir,
            as_nobody,
        };
        cluster.run(
            "initdb",
            &[
                "-D".as_ref(),
                cluster.data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "--auth=trust".as_ref(),
                "--no-locale".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--no-sync".as_ref(),
            ],
        );
        // fsync=off: the tests never crash the machine, and it keeps each commit cheap.
        let options = format!(
            "-k {} -c listen_addresses='' -p {PORT} -c fsync=off -c max_connections=300",
            cluster.socket_dir.display()
        );
        let log = cluster.data.join("server.log");
        let started = cluster.try_run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                cluster.data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-o".as_ref(),
                options.as_ref(),
                "-w".as_ref(),
                "start".as_ref(),
            ],
        );
        if let Err(e) = started {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("pg_ctl start failed: {e}\nserver log:\n{log}");
        }
        cluster
    }

    fn command(&self, bin: &str) -> Command {
        let path = Path::new(PG_BIN).join(bin);
        if self.as_nobody {
            let mut c = Command::new("runuser");
            c.args(["-u", UNPRIVILEGED, "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn try_run(&self, bin: &str, args: &[&std::ffi::OsStr]) -> Result<(), String> {
        let out = self
            .command(bin)
            .args(args)
            .current_dir(&self.root)
            .output()
            .map_err(|e| format!("{bin}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{bin} {args:?}: {}\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn run(&self, bin: &str, args: &[&std::ffi::OsStr]) {
        if let Err(e) = self.try_run(bin, args) {
            panic!("{e}");
        }
    }

    /// A new, empty database and its connection URL.
    pub fn new_database(&self) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let sock = self.socket_dir.as_os_str();
        let port = PORT.to_string();
        self.run(
            "createdb",
            &[
                "-h".as_ref(),
                sock,
                "-p".as_ref(),
                port.as_ref(),
                "-U".as_ref(),
                "postgres".as_ref(),
                name.as_ref(),
            ],
        );
        // The URL form `openkvs serve --catalog` takes.
        format!(
            "postgresql://postgres@localhost/{name}?host={}&port={PORT}",
            self.socket_dir.display()
        )
    }

    fn stop(&self) {
        let _ = self.try_run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                self.data.as_os_str(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "-w".as_ref(),
                "stop".as_ref(),
            ],
        );
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// `id FLAG nobody` (uid or gid).
fn id_of(flag: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, UNPRIVILEGED])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

extern "C" {
    fn atexit(callback: extern "C" fn()) -> std::os::raw::c_int;
}

extern "C" fn stop_cluster() {
    if let Some(c) = CLUSTER.get() {
        c.stop();
    }
}

pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        let cluster = Cluster::start();
        // Statics are never dropped: stop the cluster when the test binary exits (libtest ends
        // with `exit`, pass or fail, which runs atexit handlers).
        // SAFETY: registers a plain function with libc; it only reads CLUSTER, set by now.
        let registered = unsafe { atexit(stop_cluster) };
        assert_eq!(registered, 0, "atexit");
        cluster
    })
}

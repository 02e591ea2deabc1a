//! One single-node Garage (S3-compatible) per test binary, started with `scripts/garage.sh start`
//! in a temporary directory and stopped when the process exits. Without the Garage binary the
//! tests fail: run `scripts/garage.sh build` (scripts/test.sh does).

use object_store::ObjectStore;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock};
use store::object::s3;

/// One Garage per test binary, stopped at process exit.
pub struct Garage {
    dir: PathBuf,
    /// DIR/env: OPENKVS_S3_ENDPOINT, _REGION, _BUCKET, _ACCESS_KEY_ID, _SECRET_ACCESS_KEY.
    env: HashMap<String, String>,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/garage.sh")
}

impl Garage {
    fn start() -> Garage {
        let dir = std::env::temp_dir().join(format!("openkvs-garage-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = Command::new(script())
            .arg("start")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "scripts/garage.sh start failed (if Garage is not built, run `scripts/garage.sh build`):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = std::fs::read_to_string(dir.join("env")).unwrap();
        let env = env
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Garage { dir, env }
    }

    pub fn var(&self, name: &str) -> &str {
        &self.env[&format!("OPENKVS_S3_{name}")]
    }

    /// The bucket, as a server configured from DIR/env would open it; `secret` replaces the
    /// secret access key.
    pub fn bucket(&self, secret: Option<&str>) -> Arc<dyn ObjectStore> {
        s3(
            &format!("s3://{}", self.var("BUCKET")),
            Some(self.var("ENDPOINT")),
            self.var("REGION"),
            self.var("ACCESS_KEY_ID"),
            secret.unwrap_or(self.var("SECRET_ACCESS_KEY")),
        )
        .unwrap()
    }

    fn stop(&self) {
        let _ = Command::new(script()).arg("stop").arg(&self.dir).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static GARAGE: OnceLock<Garage> = OnceLock::new();

extern "C" {
    fn atexit(callback: extern "C" fn()) -> std::os::raw::c_int;
}

extern "C" fn stop_garage() {
    if let Some(g) = GARAGE.get() {
        g.stop();
    }
}

pub fn garage() -> &'static Garage {
    GARAGE.get_or_init(|| {
        let garage = Garage::start();
        // libtest ends with `exit`, pass or fail, which runs atexit handlers.
        // SAFETY: registers a plain function with libc; it only reads GARAGE, set by now.
        assert_eq!(unsafe { atexit(stop_garage) }, 0, "atexit");
        garage
    })
}

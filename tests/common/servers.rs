//! Storage servers on loopback for the tests: Garage, moto where AWS semantics matter,
//! Azurite and fake-gcs-server (integration/*.sh), each stopped on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::scratch_root;

/// A single-node Garage on loopback (integration/garage.sh), stopped on drop.
pub struct Garage {
    pub dir: tempfile::TempDir,
    pub vars: Vec<(String, String)>,
    pub bucket: String,
}

/// Starts a storage test server (Garage, an emulator) with `integration/<script> start DIR`; returns its directory,
/// the `export` lines it printed, and its bucket.
fn start_s3_server(script: &str) -> (tempfile::TempDir, Vec<(String, String)>, String) {
    let dir = tempfile::Builder::new()
        .prefix(&format!("{script}-"))
        .tempdir_in(scratch_root())
        .expect("tempdir");
    let out = Command::new(integration_script(script))
        .arg("start")
        .arg(dir.path())
        .output()
        .expect("start script");
    assert!(
        out.status.success(),
        "{script} did not start (install it with integration/install-deps.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let vars: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let bucket = vars
        .iter()
        .find(|(k, _)| k == "COFRE_TEST_BUCKET")
        .map(|(_, v)| v.clone())
        .expect("bucket");
    (dir, vars, bucket)
}

fn integration_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("integration/{name}.sh"))
}

/// A storage emulator on loopback (integration/<script>.sh), stopped on drop: Azurite,
/// moto, fake-gcs-server.
pub struct Emulator {
    pub dir: tempfile::TempDir,
    /// The `export` lines its script printed: what a client needs to reach it.
    pub vars: Vec<(String, String)>,
    /// The bucket (Azure: container) it made.
    pub bucket: String,
    script: &'static str,
}

impl Emulator {
    fn start(script: &'static str) -> Emulator {
        let (dir, vars, bucket) = start_s3_server(script);
        Emulator {
            dir,
            vars,
            bucket,
            script,
        }
    }

    pub fn var(&self, k: &str) -> String {
        self.vars
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{} printed no {k}", self.script))
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = Command::new(integration_script(self.script))
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

/// Azurite, Microsoft's Azure Storage emulator (integration/azurite.sh).
pub struct Azurite;

impl Azurite {
    pub fn start() -> Emulator {
        Emulator::start("azurite")
    }
}

/// moto's S3 server (integration/moto.sh): AWS archive-class semantics.
pub struct Moto;

impl Moto {
    pub fn start() -> Emulator {
        Emulator::start("moto")
    }
}

/// moto with IAM enforced and a bucket with Object Lock (integration/moto-iam.sh): AWS_*
/// is an admin; COFRE_TEST_INGEST_KEY_ID/SECRET a role that may not delete.
pub struct MotoIam;

impl MotoIam {
    pub fn start() -> Emulator {
        Emulator::start("moto-iam")
    }
}

/// fake-gcs-server, a Google Cloud Storage emulator (integration/fakegcs.sh).
pub struct FakeGcs;

impl FakeGcs {
    pub fn start() -> Emulator {
        Emulator::start("fakegcs")
    }
}

impl Garage {
    pub fn start() -> Garage {
        let (dir, vars, bucket) = start_s3_server("garage");
        Garage { dir, vars, bucket }
    }

    pub fn kill(&self) {
        let pid = std::fs::read_to_string(self.dir.path().join("pid")).expect("pid");
        unsafe { libc::kill(pid.trim().parse().expect("pid number"), libc::SIGKILL) };
        let _ = Command::new(integration_script("garage"))
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }

    pub fn restart(&self) {
        let st = Command::new(integration_script("garage"))
            .arg("restart")
            .arg(self.dir.path())
            .status()
            .expect("garage.sh");
        assert!(st.success(), "garage restart failed");
    }

    pub fn var(&self, k: &str) -> String {
        self.vars
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .expect("var")
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = Command::new(integration_script("garage"))
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

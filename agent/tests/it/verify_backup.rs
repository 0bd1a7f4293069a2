//! `onshi-agent verify-backup` as an operator runs it: the built binary, fixture .pfx files, a
//! fake machine whose certificate directory holds the clinic certificate.

// Test code: a panic is the failure report.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const RSA_THUMB: &str = "CB049BE28AD7CECD0581CB0FA15BF4938783BC14";
const EC_THUMB: &str = "215F9F4E4FBF50E395EABC730A59EF6C91E1371D";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pkcs12")
        .join(name)
}

/// A machine with the RSA clinic certificate installed, and an empty data directory.
struct Machine {
    root: tempfile::TempDir,
    data: tempfile::TempDir,
}

impl Machine {
    fn new() -> Machine {
        let root = tempfile::tempdir().unwrap();
        let certs = root.path().join("etc/onshi/certs");
        std::fs::create_dir_all(&certs).unwrap();
        std::fs::copy(fixture("clinic.pem"), certs.join("clinic.pem")).unwrap();
        std::fs::write(certs.join("clinic.key"), "(stands for the key)").unwrap();
        Machine {
            root,
            data: tempfile::tempdir().unwrap(),
        }
    }

    fn agent(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_onshi-agent"))
            .args(args)
            .arg("--root")
            .arg(self.root.path())
            .arg("--data-dir")
            .arg(self.data.path())
            .env_remove("ONSHI_AGENT_BACKUP_PASSWORD")
            .env_remove("ONSHI_AGENT_CONFIG")
            .env("ONSHI_AGENT_LOG_LEVEL", "warn")
            .output()
            .unwrap()
    }

    fn verify(&self, file: &Path, extra: &[&str]) -> (Option<i32>, Value, String) {
        let mut args = vec!["verify-backup", file.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        let out = self.agent(&args);
        let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        (
            out.status.code(),
            json,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn record(&self) -> PathBuf {
        self.data.path().join("backup.json")
    }
}

#[test]
fn a_good_backup_is_recorded_and_the_next_snapshot_carries_it() {
    let m = Machine::new();
    for name in ["aes256-sha256.pfx", "tripledes-sha1.pfx", "rc2-40.pfx"] {
        let (code, json, stderr) = m.verify(&fixture(name), &[]);
        assert_eq!(code, Some(0), "{name}: {json} {stderr}");
        assert_eq!(json["ok"], true);
        assert_eq!(json["default_password"], true);
        assert_eq!(json["thumbprint"], RSA_THUMB);
        assert_eq!(json["has_private_key"], true);
        assert_eq!(json["key_matches_certificate"], true);
        assert_eq!(json["installed"], true);
        assert_eq!(json["matches_current"], true);
        assert_eq!(json["not_after"], "2029-05-31T00:00:00Z");
    }
    let record: Value = serde_json::from_slice(&std::fs::read(m.record()).unwrap()).unwrap();
    assert_eq!(record["thumbprint"], RSA_THUMB);
    assert_eq!(record["matches_current"], true);

    let out = m.agent(&["once", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snapshot: Value = serde_json::from_slice(&out.stdout).unwrap();
    let backup = &snapshot["certificates"]["backup"];
    assert_eq!(backup["thumbprint"], RSA_THUMB);
    assert_eq!(backup["matches_current"], true);
}

#[test]
fn each_failure_has_its_exit_code_and_records_nothing() {
    let m = Machine::new();
    let text = m.root.path().join("notes.pfx");
    std::fs::write(&text, "this is not a certificate backup\n").unwrap();
    let cases: [(PathBuf, i32, &str); 5] = [
        (fixture("ec-password-2468.pfx"), 3, "wrong_password"),
        (fixture("no-key.pfx"), 5, "no_private_key"),
        (fixture("mismatched-key.pfx"), 6, "key_mismatch"),
        (fixture("truncated.pfx"), 4, "truncated"),
        (text, 4, "not_pkcs12"),
    ];
    for (file, exit, code) in cases {
        let (got, json, stderr) = m.verify(&file, &[]);
        assert_eq!(got, Some(exit), "{}: {json} {stderr}", file.display());
        assert_eq!(json["ok"], false);
        assert_eq!(json["error_code"], code);
        assert!(stderr.contains("verify-backup"), "{stderr}");
        assert!(!m.record().exists());
    }
    let (_, _, stderr) = m.verify(&fixture("ec-password-2468.pfx"), &[]);
    assert!(
        stderr.contains("1357"),
        "says which password was tried: {stderr}"
    );

    // Human-readable output for a failure names the certificate it found.
    let out = m.agent(&["verify-backup", fixture("no-key.pfx").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(5));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(RSA_THUMB), "{stdout}");
    assert!(stdout.contains("FAILED"), "{stdout}");
}

#[test]
fn a_given_password_is_used_and_appears_nowhere() {
    let m = Machine::new();
    // A neutral file name, so the password cannot show up through the path.
    let file = m.root.path().join("backup.pfx");
    std::fs::copy(fixture("ec-password-2468.pfx"), &file).unwrap();
    let out = m.agent(&[
        "verify-backup",
        file.to_str().unwrap(),
        "--json",
        "--password",
        "2468",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stdout.contains("2468") && !stderr.contains("2468"));
    let json: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["thumbprint"], EC_THUMB);
    assert_eq!(json["default_password"], false);
    // The EC certificate is not the one installed: a good backup, of another certificate.
    assert_eq!(json["installed"], false);
    assert_eq!(json["matches_current"], false);
    let record = std::fs::read_to_string(m.record()).unwrap();
    assert!(!record.contains("2468"));
    assert!(record.contains(EC_THUMB));
}

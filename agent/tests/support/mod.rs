//! A fake machine for the agent's sources: every file a Linux collection reads, under a
//! temporary root.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use onshi_shared::{AccountRole, AccountSpec};

/// Boot time written to `/proc/stat` (2026-11-24T00:00:00Z).
pub const BTIME: i64 = 1_795_478_400;

pub struct FakeRoot {
    pub dir: tempfile::TempDir,
}

impl FakeRoot {
    /// A terminal with two watched accounts, the clinic certificate (with its key) plus an old
    /// one, an unrelated cert and the root, two watched apps installed, a pending reboot, and
    /// a wired + wireless network.
    pub fn new() -> FakeRoot {
        let root = FakeRoot {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        root.write("proc/uptime", "12345.67 23456.78\n");
        root.write(
            "proc/stat",
            &format!("cpu  2255 34 2290 22625563 6290 127 456 0 0 0\nctxt 1990473\nbtime {BTIME}\nprocesses 2915\n"),
        );
        root.write("etc/hostname", "onshi-test-pc\n");
        root.write(
            "etc/os-release",
            "PRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\nNAME=\"Debian GNU/Linux\"\nID=debian\n",
        );
        root.write(
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/bash\n\
             onshi:x:1001:1001:Onshi,,,:/home/onshi:/bin/bash\n\
             kao:x:1002:1002::/home/kao:/bin/bash\n",
        );
        root.write(
            "etc/shadow",
            "root:*:20000:0:99999:7:::\n\
             onshi:$y$j9T$salt$hash:20400:0:90:7:::\n\
             kao:!$y$j9T$salt$hash:20300:0:99999:7:::\n",
        );
        let certs = fixtures().join("certs");
        for name in [
            "clinic.pem",
            "clinic-old.der",
            "other.pem",
            "root-ca.pem",
            "README.md",
        ] {
            root.copy(&certs.join(name), &format!("etc/onshi/certs/{name}"));
        }
        // Presence is all the agent looks at; no real key material in the tree.
        root.write(
            "etc/onshi/certs/clinic.key",
            "test fixture: presence only\n",
        );
        root.write(
            "var/lib/onshi/apps.json",
            r#"[{"name":"配信アプリ","version":"2.4.1","installed_on":"20260901"},
                {"name":"連携アプリ","version":"1.12.0","installed_on":"20260901"},
                {"name":"Unwatched Tool","version":"9"}]"#,
        );
        root.write(
            "var/run/reboot-required",
            "*** System restart required ***\n",
        );
        root.write("var/run/reboot-required.pkgs", "libc6\n");
        let net = fixtures().join("net");
        for name in ["route", "arp", "fib_trie"] {
            root.copy(&net.join(name), &format!("proc/net/{name}"));
        }
        root.copy(&net.join("resolv.conf"), "etc/resolv.conf");
        for (iface, mac, state) in [
            ("lo", "00:00:00:00:00:00", "unknown"),
            ("enp3s0", "00:11:22:33:44:55", "up"),
            ("wlp2s0", "66:77:88:99:aa:bb", "up"),
            ("docker0", "02:42:00:00:00:01", "down"),
        ] {
            root.write(
                &format!("sys/class/net/{iface}/address"),
                &format!("{mac}\n"),
            );
            root.write(
                &format!("sys/class/net/{iface}/operstate"),
                &format!("{state}\n"),
            );
        }
        root
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, content: &str) {
        let path = self.dir.path().join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, content).expect("write");
    }

    pub fn remove(&self, rel: &str) {
        fs::remove_file(self.dir.path().join(rel)).expect("remove");
    }

    pub fn copy(&self, from: &Path, rel: &str) {
        let path = self.dir.path().join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::copy(from, path).expect("copy");
    }
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn accounts() -> Vec<AccountSpec> {
    vec![
        AccountSpec {
            role: AccountRole::Windows,
            name: "onshi".into(),
        },
        AccountSpec {
            role: AccountRole::FaceAuth,
            name: "kao".into(),
        },
        AccountSpec {
            role: AccountRole::Linkage,
            name: "renkei".into(),
        },
    ]
}

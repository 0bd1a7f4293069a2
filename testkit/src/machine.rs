//! A fake terminal for the agent's `--root`: every file a Linux collection reads, under a
//! directory. Two machines: [`FakeMachine::healthy`], a terminal with nothing wrong (the
//! end-to-end tests change it step by step), and [`FakeMachine::lab`], one with something of
//! every kind for the agent's collection tests.

use std::fs;
use std::path::{Path, PathBuf};

use onshi_shared::{AccountRole, AccountSpec};

/// Boot time the lab machine writes to `/proc/stat` (2026-11-24T00:00:00Z).
pub const BTIME: i64 = 1_795_478_400;

/// The agent crate's fixtures: real `/proc/net` captures and test certificates.
pub fn agent_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/tests/fixtures")
}

/// The accounts both machines were installed with.
pub fn accounts() -> Vec<AccountSpec> {
    let spec = |role, name: &str| AccountSpec {
        role,
        name: name.into(),
    };
    vec![
        spec(AccountRole::Windows, "onshi"),
        spec(AccountRole::FaceAuth, "kao"),
        spec(AccountRole::Linkage, "renkei"),
    ]
}

pub struct FakeMachine {
    root: PathBuf,
    /// Removed with the machine when the machine made its own directory.
    _dir: Option<tempfile::TempDir>,
}

impl FakeMachine {
    fn at(root: &Path) -> FakeMachine {
        FakeMachine {
            root: root.to_path_buf(),
            _dir: None,
        }
    }

    /// A healthy terminal under `root`: three protected accounts, the clinic certificate with
    /// its key, two watched apps, one wired adapter with gateway 192.168.10.1, started two
    /// hours ago.
    pub fn healthy(root: &Path, hostname: &str) -> FakeMachine {
        let m = FakeMachine::at(root);
        m.write("proc/uptime", "7200.50 14000.00\n");
        let btime = chrono::Utc::now().timestamp() - 7200;
        m.write("proc/stat", &format!("cpu  1 2 3 4\nbtime {btime}\n"));
        m.write("etc/hostname", &format!("{hostname}\n"));
        m.write("etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12\"\n");
        m.set_accounts("renkei");
        let certs = agent_fixtures().join("certs");
        m.copy(&certs.join("clinic.pem"), "etc/onshi/certs/clinic.pem");
        m.write("etc/onshi/certs/clinic.key", "presence only\n");
        m.write(
            "var/lib/onshi/apps.json",
            r#"[{"name":"配信アプリ","version":"2.4.1","installed_on":"20260901"},
                {"name":"連携アプリ","version":"1.12.0","installed_on":"20260901"}]"#,
        );
        let net = agent_fixtures().join("net");
        m.copy(&net.join("fib_trie"), "proc/net/fib_trie");
        m.copy(&net.join("resolv.conf"), "etc/resolv.conf");
        m.set_gateway("010AA8C0", "192.168.10.1", "00:aa:bb:cc:dd:ee");
        m.write("sys/class/net/enp3s0/address", "00:11:22:33:44:55\n");
        m.write("sys/class/net/enp3s0/operstate", "up\n");
        m
    }

    /// A terminal in a temporary directory with two watched accounts, the clinic certificate
    /// (with its key) plus an old one, an unrelated certificate and the root, two watched apps
    /// installed, a pending reboot, and a wired + wireless network.
    pub fn lab() -> FakeMachine {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut m = FakeMachine::at(dir.path());
        m._dir = Some(dir);
        m.write("proc/uptime", "12345.67 23456.78\n");
        m.write(
            "proc/stat",
            &format!(
                "cpu  2255 34 2290 22625563 6290 127 456 0 0 0\nctxt 1990473\nbtime {BTIME}\nprocesses 2915\n"
            ),
        );
        m.write("etc/hostname", "onshi-test-pc\n");
        m.write(
            "etc/os-release",
            "PRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\nNAME=\"Debian GNU/Linux\"\nID=debian\n",
        );
        m.write(
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/bash\n\
             onshi:x:1001:1001:Onshi,,,:/home/onshi:/bin/bash\n\
             kao:x:1002:1002::/home/kao:/bin/bash\n",
        );
        m.write(
            "etc/shadow",
            "root:*:20000:0:99999:7:::\n\
             onshi:$y$j9T$salt$hash:20400:0:90:7:::\n\
             kao:!$y$j9T$salt$hash:20300:0:99999:7:::\n",
        );
        let certs = agent_fixtures().join("certs");
        for name in [
            "clinic.pem",
            "clinic-old.der",
            "other.pem",
            "root-ca.pem",
            "README.md",
        ] {
            m.copy(&certs.join(name), &format!("etc/onshi/certs/{name}"));
        }
        // Presence is all the agent looks at; no real key material in the tree.
        m.write(
            "etc/onshi/certs/clinic.key",
            "test fixture: presence only\n",
        );
        m.write(
            "var/lib/onshi/apps.json",
            r#"[{"name":"配信アプリ","version":"2.4.1","installed_on":"20260901"},
                {"name":"連携アプリ","version":"1.12.0","installed_on":"20260901"},
                {"name":"Unwatched Tool","version":"9"}]"#,
        );
        m.write(
            "var/run/reboot-required",
            "*** System restart required ***\n",
        );
        m.write("var/run/reboot-required.pkgs", "libc6\n");
        let net = agent_fixtures().join("net");
        for name in ["route", "arp", "fib_trie"] {
            m.copy(&net.join(name), &format!("proc/net/{name}"));
        }
        m.copy(&net.join("resolv.conf"), "etc/resolv.conf");
        for (iface, mac, state) in [
            ("lo", "00:00:00:00:00:00", "unknown"),
            ("enp3s0", "00:11:22:33:44:55", "up"),
            ("wlp2s0", "66:77:88:99:aa:bb", "up"),
            ("docker0", "02:42:00:00:00:01", "down"),
        ] {
            m.write(
                &format!("sys/class/net/{iface}/address"),
                &format!("{mac}\n"),
            );
            m.write(
                &format!("sys/class/net/{iface}/operstate"),
                &format!("{state}\n"),
            );
        }
        m
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// passwd/shadow with the linkage account (uid 1003) under `linkage_name`.
    pub fn set_accounts(&self, linkage_name: &str) {
        self.write(
            "etc/passwd",
            &format!(
                "root:x:0:0:root:/root:/bin/bash\n\
                 onshi:x:1001:1001::/home/onshi:/bin/bash\n\
                 kao:x:1002:1002::/home/kao:/bin/bash\n\
                 {linkage_name}:x:1003:1003::/home/renkei:/bin/bash\n"
            ),
        );
        self.write(
            "etc/shadow",
            &format!(
                "root:*:20000:0:99999:7:::\n\
                 onshi:$y$j9T$s$h:20400:0:99999:7:::\n\
                 kao:$y$j9T$s$h:20400:0:99999:7:::\n\
                 {linkage_name}:$y$j9T$s$h:20400:0:99999:7:::\n"
            ),
        );
    }

    /// The default route through `gateway_hex` (little-endian, as /proc/net/route shows it).
    pub fn set_gateway(&self, gateway_hex: &str, gateway: &str, mac: &str) {
        self.write(
            "proc/net/route",
            &format!(
                "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                 enp3s0\t00000000\t{gateway_hex}\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
                 enp3s0\t000AA8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n"
            ),
        );
        self.write(
            "proc/net/arp",
            &format!(
                "IP address       HW type     Flags       HW address            Mask     Device\n\
                 {gateway:<16} 0x1         0x2         {mac}     *        enp3s0\n"
            ),
        );
    }

    pub fn write(&self, rel: &str, content: &str) {
        let path = self.root.join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, content).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    pub fn remove(&self, rel: &str) {
        fs::remove_file(self.root.join(rel)).expect("remove");
    }

    pub fn copy(&self, from: &Path, rel: &str) {
        let path = self.root.join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::copy(from, &path).unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
    }
}

//! Cuts a snapshot down to the protocol [limits](onshi_shared::limits), noting what was cut, so
//! a strange machine (a thousand adapters, a huge host name) still reports.

use onshi_shared::limits::{MAX_LIST_LEN, MAX_STRING_LEN};
use onshi_shared::{Snapshot, SourceNote};

/// Truncates over-long strings (at a character boundary) and lists in place; adds a note
/// naming every field that was cut.
pub fn fit_to_limits(s: &mut Snapshot) {
    let mut cut: Vec<&'static str> = Vec::new();
    let text = |field: &'static str, value: &mut String, cut: &mut Vec<&'static str>| {
        if truncate(value, MAX_STRING_LEN) && !cut.contains(&field) {
            cut.push(field);
        }
    };
    let opt = |field: &'static str, value: &mut Option<String>, cut: &mut Vec<&'static str>| {
        if let Some(v) = value
            && truncate(v, MAX_STRING_LEN)
            && !cut.contains(&field)
        {
            cut.push(field);
        }
    };

    text("hostname", &mut s.hostname, &mut cut);
    text("os", &mut s.os, &mut cut);
    text("agent_version", &mut s.agent_version, &mut cut);
    opt(
        "uptime.restart_requested_by",
        &mut s.uptime.restart_requested_by,
        &mut cut,
    );

    list("apps.installed", &mut s.apps.installed, &mut cut);
    for a in &mut s.apps.installed {
        text("apps.installed.name", &mut a.name, &mut cut);
        opt("apps.installed.version", &mut a.version, &mut cut);
        opt("apps.installed.installed_on", &mut a.installed_on, &mut cut);
    }
    strings("apps.missing", &mut s.apps.missing, &mut cut);
    if let Some(p) = &mut s.apps.pending_reboot {
        strings("apps.pending_reboot.reasons", &mut p.reasons, &mut cut);
    }

    list("certificates.certs", &mut s.certificates.certs, &mut cut);
    for c in &mut s.certificates.certs {
        text("certificates.subject", &mut c.subject, &mut cut);
        text("certificates.issuer", &mut c.issuer, &mut cut);
        text("certificates.serial", &mut c.serial, &mut cut);
        text("certificates.thumbprint", &mut c.thumbprint, &mut cut);
        text("certificates.store", &mut c.store, &mut cut);
    }
    if let Some(b) = &mut s.certificates.backup {
        text(
            "certificates.backup.thumbprint",
            &mut b.thumbprint,
            &mut cut,
        );
    }

    list("accounts.accounts", &mut s.accounts.accounts, &mut cut);
    for a in &mut s.accounts.accounts {
        text("accounts.name", &mut a.name, &mut cut);
        opt("accounts.sid", &mut a.sid, &mut cut);
        if let Some(c) = &mut a.last_change {
            text("accounts.last_change.what", &mut c.what, &mut cut);
            opt("accounts.last_change.by", &mut c.by, &mut cut);
        }
    }

    list("network.adapters", &mut s.network.adapters, &mut cut);
    for a in &mut s.network.adapters {
        text("network.adapters.name", &mut a.name, &mut cut);
        opt("network.adapters.mac", &mut a.mac, &mut cut);
        strings("network.adapters.addresses", &mut a.addresses, &mut cut);
        strings("network.adapters.gateways", &mut a.gateways, &mut cut);
        strings("network.adapters.dns", &mut a.dns, &mut cut);
    }
    opt(
        "network.default_gateway",
        &mut s.network.default_gateway,
        &mut cut,
    );
    opt("network.gateway_mac", &mut s.network.gateway_mac, &mut cut);
    text("network.fingerprint", &mut s.network.fingerprint, &mut cut);
    list("network.probes", &mut s.network.probes, &mut cut);
    for p in &mut s.network.probes {
        text("network.probes.target", &mut p.target, &mut cut);
        opt("network.probes.error", &mut p.error, &mut cut);
    }

    for n in &mut s.notes {
        text("notes", &mut n.area, &mut cut);
        text("notes", &mut n.detail, &mut cut);
    }
    let mut extra = Vec::new();
    if !cut.is_empty() {
        tracing::warn!(fields = ?cut, "snapshot cut down to the protocol limits");
        let mut detail = format!("cut to the protocol limits: {}", cut.join(", "));
        truncate(&mut detail, MAX_STRING_LEN);
        extra.push(SourceNote {
            area: "agent".into(),
            detail,
        });
    }
    let room = MAX_LIST_LEN - extra.len();
    if s.notes.len() > room {
        let dropped = s.notes.len() - (room - 1);
        s.notes.truncate(room - 1);
        extra.push(SourceNote {
            area: "agent".into(),
            detail: format!("{dropped} more notes left out"),
        });
    }
    s.notes.extend(extra);
}

fn list<T>(field: &'static str, items: &mut Vec<T>, cut: &mut Vec<&'static str>) {
    if items.len() > MAX_LIST_LEN {
        items.truncate(MAX_LIST_LEN);
        cut.push(field);
    }
}

fn strings(field: &'static str, items: &mut Vec<String>, cut: &mut Vec<&'static str>) {
    list(field, items, cut);
    let mut any = false;
    for item in items.iter_mut() {
        any |= truncate(item, MAX_STRING_LEN);
    }
    if any && !cut.contains(&field) {
        cut.push(field);
    }
}

/// Shortens `s` to at most `max` bytes at a character boundary; whether it did.
pub(crate) fn truncate(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    true
}

#[cfg(test)]
mod tests {
    use onshi_shared::{Validate, sample};

    use super::*;

    #[test]
    fn oversized_snapshot_is_cut_until_it_validates() {
        let mut s = sample::snapshot();
        s.hostname = "ホ".repeat(400);
        s.network.adapters[0].dns = vec!["8.8.8.8".into(); MAX_LIST_LEN + 5];
        s.network.adapters = vec![s.network.adapters[0].clone(); MAX_LIST_LEN + 1];
        s.apps.missing = vec!["x".repeat(MAX_STRING_LEN + 1)];
        s.notes = vec![
            SourceNote {
                area: "a".into(),
                detail: "d".into(),
            };
            MAX_LIST_LEN + 10
        ];
        assert!(s.validate().is_err());
        fit_to_limits(&mut s);
        s.validate().unwrap();
        assert!(s.hostname.len() <= MAX_STRING_LEN);
        assert!(s.hostname.chars().all(|c| c == 'ホ'));
        assert_eq!(s.notes.len(), MAX_LIST_LEN);
        assert!(s.notes.last().unwrap().detail.contains("more notes"));
    }

    #[test]
    fn a_snapshot_within_limits_is_untouched() {
        let mut s = sample::snapshot();
        let before = s.clone();
        fit_to_limits(&mut s);
        assert_eq!(s, before);
    }
}

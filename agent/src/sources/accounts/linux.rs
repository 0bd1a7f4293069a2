//! Local users from `/etc/passwd` and `/etc/shadow`.

use super::{AREA, UserRecord, parse};
use crate::sources::{Ctx, Notes, read_text_noted};

pub(super) fn users(ctx: &Ctx, notes: &mut Notes) -> Vec<UserRecord> {
    if ctx.policy.accounts.is_empty() {
        return Vec::new();
    }
    let Some(passwd) = read_text_noted(&ctx.path("etc/passwd"), AREA, notes) else {
        return Vec::new();
    };
    let passwd = parse::passwd(&passwd);
    // /etc/shadow is readable by root only; without it the password fields stay unknown.
    let shadow = read_text_noted(&ctx.path("etc/shadow"), AREA, notes).map(|t| parse::shadow(&t));
    passwd
        .iter()
        .map(|p| {
            let s = shadow
                .as_ref()
                .and_then(|entries| entries.iter().find(|s| s.name == p.name));
            parse::user_record(p, s, shadow.is_some(), ctx.now)
        })
        .collect()
}

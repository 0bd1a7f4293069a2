//! The rules every staff input follows, wherever it was typed. Pure functions; the messages are
//! for the person typing.

use crate::Error;

/// A single-line field of at most `max` characters: no line breaks or other control characters
/// (a clinic's name ends up in mail headers).
pub fn single_line(label: &str, s: &str, max: usize) -> Result<(), Error> {
    if s.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "{label}に改行や制御文字は使えません"
        )));
    }
    if s.chars().count() > max {
        return Err(Error::Invalid(format!("{label}は {max} 文字までです")));
    }
    Ok(())
}

/// A required single-line field.
pub fn required_line(label: &str, s: &str, max: usize) -> Result<(), Error> {
    if s.trim().is_empty() {
        return Err(Error::Invalid(format!("{label}を入力してください")));
    }
    single_line(label, s, max)
}

/// Free text (notes): line breaks allowed, other control characters not.
pub fn text(label: &str, s: &str, max: usize) -> Result<(), Error> {
    if s.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(Error::Invalid(format!("{label}に制御文字は使えません")));
    }
    if s.chars().count() > max {
        return Err(Error::Invalid(format!("{label}は {max} 文字までです")));
    }
    Ok(())
}

/// An e-mail address a mail can go to (one address, no display name).
pub fn email(s: &str) -> Result<(), Error> {
    let bad = || Error::Invalid("メールアドレスが正しくありません".into());
    let (local, domain) = s.split_once('@').ok_or_else(bad)?;
    let ok = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c));
    if ok { Ok(()) } else { Err(bad()) }
}

/// A 医療機関コード: ten digits (dashes and spaces as people write them are dropped).
pub fn institution_code(s: &str) -> Result<String, Error> {
    let c = s.replace(['-', ' '], "");
    if c.len() != 10 || !c.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::Invalid("医療機関コードは10桁の数字です".into()));
    }
    Ok(c)
}

/// `Some(trimmed)` unless empty.
pub fn opt(s: &str) -> Option<String> {
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(r: Result<(), Error>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn fields_refuse_what_cannot_go_into_a_mail() {
        assert!(msg(single_line("医療機関名", "A\r\nBcc: x@y.z", 200)).contains("改行"));
        assert!(msg(single_line("名前", "あいう", 2)).contains("2 文字まで"));
        assert!(msg(required_line("理由", "  ", 10)).contains("理由を入力"));
        assert!(text("メモ", "一行目\n二行目", 100).is_ok());
        assert!(msg(text("メモ", "a\u{7}b", 100)).contains("制御文字"));
    }

    #[test]
    fn addresses_and_codes() {
        for good in ["info@yamada.example.jp", "a.b+c@d.jp"] {
            assert!(email(good).is_ok(), "{good}");
        }
        for bad in [
            "no-at-sign",
            "a@b.jp\r\nBcc: c@d.jp",
            "a@b",
            "a@.jp",
            "Name <a@b.jp>",
            "a@b@c.jp",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
        assert_eq!(institution_code("13-1 2345678").unwrap(), "1312345678");
        assert!(institution_code("12345").is_err());
    }
}

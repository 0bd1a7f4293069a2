//! The XML that `EvtRender(EvtRenderEventXml)` gives for one Windows event log record, read into
//! an [`EventRecord`]. Pure: text in, record out; tested on Linux with fixtures.
//!
//! The reader knows only what that XML uses: elements, attributes in single or double quotes,
//! the five predefined entities and character references, comments, the XML declaration and
//! CDATA. It is not a general XML parser.

use chrono::{DateTime, Utc};

use crate::error::AgentError;

/// One event: the `System` fields the agent uses and the `EventData`/`UserData` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// `Provider/@Name`, e.g. `Microsoft-Windows-Kernel-Boot`, `EventLog`, `User32`.
    pub provider: String,
    pub event_id: u32,
    /// `TimeCreated/@SystemTime`.
    pub time: Option<DateTime<Utc>>,
    pub record_id: Option<u64>,
    /// `Security/@UserID`: the SID the event was logged under.
    pub user_sid: Option<String>,
    pub computer: Option<String>,
    /// `EventData/Data` as (`@Name`, text) in order; for `UserData`, each leaf element as
    /// (element name, text).
    pub data: Vec<(Option<String>, String)>,
}

impl EventRecord {
    /// The value of the named data item.
    pub fn data(&self, name: &str) -> Option<&str> {
        self.data
            .iter()
            .find(|(n, _)| n.as_deref() == Some(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `index`th data item, named or not (events like EventLog 6008 have unnamed ones).
    pub fn nth(&self, index: usize) -> Option<&str> {
        self.data.get(index).map(|(_, v)| v.as_str())
    }
}

/// Parses one rendered event.
pub fn parse_event(xml: &str) -> Result<EventRecord, AgentError> {
    let err = |detail: &str| AgentError::parse("event XML", detail.to_string());
    let mut provider = None;
    let mut event_id = None;
    let mut time = None;
    let mut record_id = None;
    let mut user_sid = None;
    let mut computer = None;
    let mut data = Vec::new();

    let mut stack: Vec<String> = Vec::new();
    // The `Data` element being read (its name), and the text read inside the current element.
    let mut data_name: Option<Option<String>> = None;
    let mut text = String::new();

    for token in Tokens::new(xml) {
        match token.map_err(&err)? {
            Token::Start { name, attrs, empty } => {
                let name = local(name);
                let parent = stack.last().map(String::as_str);
                match (parent, name) {
                    (Some("System"), "Provider") => provider = attr(&attrs, "Name"),
                    (Some("System"), "TimeCreated") => {
                        time = attr(&attrs, "SystemTime").and_then(|t| parse_time(&t));
                    }
                    (Some("System"), "Security") => user_sid = attr(&attrs, "UserID"),
                    (Some("EventData"), "Data") => {
                        if empty {
                            data.push((attr(&attrs, "Name"), String::new()));
                        } else {
                            data_name = Some(attr(&attrs, "Name"));
                        }
                    }
                    _ => {}
                }
                text.clear();
                if !empty {
                    stack.push(name.to_string());
                }
            }
            Token::Text(t) => text.push_str(&t),
            Token::End(name) => {
                let name = local(name);
                if stack.last().map(String::as_str) != Some(name) {
                    return Err(err(&format!("unexpected </{name}>")));
                }
                stack.pop();
                let parent = stack.last().map(String::as_str);
                let value = text.trim();
                match (parent, name) {
                    (Some("System"), "EventID") => event_id = value.parse().ok(),
                    (Some("System"), "EventRecordID") => record_id = value.parse().ok(),
                    (Some("System"), "Computer") => computer = Some(value.to_string()),
                    (Some("EventData"), "Data") => {
                        if let Some(n) = data_name.take() {
                            data.push((n, value.to_string()));
                        }
                    }
                    _ if stack.iter().any(|s| s == "UserData")
                        && stack.len() >= 3
                        && !value.is_empty() =>
                    {
                        data.push((Some(name.to_string()), value.to_string()));
                    }
                    _ => {}
                }
                text.clear();
            }
        }
    }
    if !stack.is_empty() {
        return Err(err("unclosed elements"));
    }
    Ok(EventRecord {
        provider: provider.ok_or_else(|| err("no Provider"))?,
        event_id: event_id.ok_or_else(|| err("no EventID"))?,
        time,
        record_id,
        user_sid,
        computer,
        data,
    })
}

/// An event log time: RFC 3339 with up to 9 fractional digits (`2026-11-25T04:00:03.5000000Z`).
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

fn attr(attrs: &[(String, String)], name: &str) -> Option<String> {
    attrs
        .iter()
        .find(|(n, _)| local(n) == name)
        .map(|(_, v)| v.clone())
}

enum Token<'a> {
    Start {
        name: &'a str,
        attrs: Vec<(String, String)>,
        empty: bool,
    },
    End(&'a str),
    Text(String),
}

struct Tokens<'a> {
    rest: &'a str,
}

impl<'a> Tokens<'a> {
    fn new(xml: &'a str) -> Self {
        Tokens {
            rest: xml.trim_start_matches('\u{FEFF}'),
        }
    }

    fn skip_past(&mut self, end: &str, what: &'static str) -> Result<&'a str, &'static str> {
        let i = self.rest.find(end).ok_or(what)?;
        let inner = &self.rest[..i];
        self.rest = &self.rest[i + end.len()..];
        Ok(inner)
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Result<Token<'a>, &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            if !self.rest.starts_with('<') {
                let end = self.rest.find('<').unwrap_or(self.rest.len());
                let raw = &self.rest[..end];
                self.rest = &self.rest[end..];
                return Some(unescape(raw).map(Token::Text));
            }
            if let Some(after) = self.rest.strip_prefix("<!--") {
                self.rest = after;
                if let Err(e) = self.skip_past("-->", "unclosed comment") {
                    return Some(Err(e));
                }
                continue;
            }
            if let Some(after) = self.rest.strip_prefix("<![CDATA[") {
                self.rest = after;
                return Some(
                    self.skip_past("]]>", "unclosed CDATA")
                        .map(|t| Token::Text(t.to_string())),
                );
            }
            if let Some(after) = self.rest.strip_prefix("<?") {
                self.rest = after;
                if let Err(e) = self.skip_past("?>", "unclosed declaration") {
                    return Some(Err(e));
                }
                continue;
            }
            if self.rest.starts_with("<!") {
                return Some(Err("DOCTYPE is not expected"));
            }
            if let Some(after) = self.rest.strip_prefix("</") {
                self.rest = after;
                return Some(
                    self.skip_past(">", "unclosed end tag")
                        .map(|name| Token::End(name.trim())),
                );
            }
            self.rest = &self.rest[1..];
            return Some(self.start_tag());
        }
    }
}

impl<'a> Tokens<'a> {
    /// After `<`: the name, attributes and `>` or `/>`.
    fn start_tag(&mut self) -> Result<Token<'a>, &'static str> {
        let name_end = self
            .rest
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .ok_or("unclosed start tag")?;
        let name = &self.rest[..name_end];
        if name.is_empty() {
            return Err("empty element name");
        }
        self.rest = &self.rest[name_end..];
        let mut attrs = Vec::new();
        loop {
            self.rest = self.rest.trim_start();
            if let Some(after) = self.rest.strip_prefix("/>") {
                self.rest = after;
                return Ok(Token::Start {
                    name,
                    attrs,
                    empty: true,
                });
            }
            if let Some(after) = self.rest.strip_prefix('>') {
                self.rest = after;
                return Ok(Token::Start {
                    name,
                    attrs,
                    empty: false,
                });
            }
            let eq = self.rest.find('=').ok_or("attribute without value")?;
            let attr_name = self.rest[..eq].trim();
            if attr_name.is_empty() || attr_name.contains(['<', '>', '/']) {
                return Err("bad attribute");
            }
            self.rest = self.rest[eq + 1..].trim_start();
            let quote = self.rest.chars().next().ok_or("unclosed start tag")?;
            if quote != '"' && quote != '\'' {
                return Err("unquoted attribute value");
            }
            self.rest = &self.rest[1..];
            let end = self.rest.find(quote).ok_or("unclosed attribute value")?;
            let value = unescape(&self.rest[..end])?;
            self.rest = &self.rest[end + 1..];
            attrs.push((attr_name.to_string(), value));
        }
    }
}

fn unescape(raw: &str) -> Result<String, &'static str> {
    if !raw.contains('&') {
        return Ok(raw.to_string());
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        let end = rest.find(';').ok_or("unterminated entity")?;
        let entity = &rest[..end];
        rest = &rest[end + 1..];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = entity.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32).ok_or("unknown entity")?
            }
        };
        out.push(c);
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use chrono::TimeZone;

    use super::*;

    /// The event fixtures: one rendered event per file.
    pub(crate) fn fixture(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/eventlog")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn reads_system_fields_and_named_data() {
        let e = parse_event(&fixture("system-kernel-boot-27-cold.xml")).unwrap();
        assert_eq!(e.provider, "Microsoft-Windows-Kernel-Boot");
        assert_eq!(e.event_id, 27);
        assert_eq!(
            e.time,
            Some(Utc.with_ymd_and_hms(2026, 11, 24, 19, 0, 5).unwrap())
        );
        assert_eq!(e.record_id, Some(48213));
        assert_eq!(e.user_sid.as_deref(), Some("S-1-5-18"));
        assert_eq!(e.computer.as_deref(), Some("ONSHI-PC-01"));
        assert_eq!(e.data("BootType"), Some("0"));
    }

    #[test]
    fn reads_unnamed_data_and_qualified_event_ids() {
        let e = parse_event(&fixture("system-eventlog-6008.xml")).unwrap();
        assert_eq!(e.provider, "EventLog");
        assert_eq!(e.event_id, 6008);
        assert_eq!(e.nth(0), Some("4:00:12"));
        assert_eq!(e.nth(1), Some("2026/11/24"));
        assert_eq!(e.data("BootType"), None);
    }

    #[test]
    fn decodes_entities_and_japanese_text() {
        let e = parse_event(&fixture("system-user32-1074.xml")).unwrap();
        assert_eq!(e.data("param7"), Some("ONSHI-PC-01\\onshi"));
        assert_eq!(e.data("param3"), Some("その他 (計画外) & \"保守\""));
    }

    #[test]
    fn reads_user_data_leaves() {
        let xml = "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'>\
            <System><Provider Name='Microsoft-Windows-Eventlog'/><EventID>1102</EventID>\
            <TimeCreated SystemTime='2026-11-25T01:02:03.0000000Z'/></System>\
            <UserData><LogFileCleared xmlns='http://manifests.microsoft.com/win/2004/08/windows/eventlog'>\
            <SubjectUserName>admin</SubjectUserName><SubjectDomainName>PC</SubjectDomainName>\
            </LogFileCleared></UserData></Event>";
        let e = parse_event(xml).unwrap();
        assert_eq!(e.event_id, 1102);
        assert_eq!(e.data("SubjectUserName"), Some("admin"));
    }

    #[test]
    fn rejects_what_is_not_an_event() {
        assert!(parse_event("").is_err());
        assert!(parse_event("<Event><System><EventID>1</EventID></System></Event>").is_err());
        assert!(
            parse_event("<Event><System><Provider Name='x'/><EventID>1</EventID></System>")
                .is_err()
        );
        assert!(
            parse_event("<Event><System><Provider Name='x'/><EventID>1</EventID></Sys></Event>")
                .is_err()
        );
        assert!(parse_event("<Event a=b></Event>").is_err());
        assert!(parse_event("<Event>&bogus;</Event>").is_err());
        // Every prefix of a real event fails or parses; none panics.
        let xml = fixture("system-user32-1074.xml");
        for (i, _) in xml.char_indices() {
            let _ = parse_event(&xml[..i]);
        }
    }

    #[test]
    fn times_keep_sub_second_digits() {
        assert_eq!(
            parse_time("2026-11-25T04:00:00.500000000Z"),
            Some(
                Utc.with_ymd_and_hms(2026, 11, 25, 4, 0, 0).unwrap()
                    + chrono::Duration::milliseconds(500)
            )
        );
        assert_eq!(parse_time("yesterday"), None);
    }
}

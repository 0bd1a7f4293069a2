//! Where mails go: SMTP (lettre, rustls) or a folder of `.eml` files, and how an outbox row
//! becomes a message.

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::compose::header_safe;
use crate::Error;
use crate::config::{SmtpSettings, TlsMode};
use crate::domain::OutboxMail;

/// Builds the lettre message for an outbox row. Every header is typed: names and subjects are
/// encoded (RFC 2047), never pasted into the header block.
pub fn build_message(from: &str, mail: &OutboxMail) -> Result<Message, String> {
    let from: Mailbox = from.parse().map_err(|e| format!("from address: {e}"))?;
    let to: Mailbox = mail
        .recipient
        .parse()
        .map_err(|e| format!("recipient {:?}: {e}", mail.recipient))?;
    Message::builder()
        .from(from)
        .to(to)
        .subject(header_safe(&mail.subject))
        .message_id(Some(mail.message_id.clone()))
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(mail.body_text.clone()),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(mail.body_html.clone()),
                ),
        )
        .map_err(|e| format!("building the message: {e}"))
}

/// Where mails go.
#[derive(Clone)]
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(AsyncFileTransport<Tokio1Executor>),
}

/// Why one send failed.
#[derive(Debug)]
pub enum SendFailure {
    /// Try again later (4xx, connection refused, timeout).
    Transient(String),
    /// Will never succeed (5xx, a malformed address).
    Permanent(String),
}

impl Transport {
    pub fn from_config(config: &SmtpSettings) -> Result<Option<Transport>, Error> {
        if let Some(dir) = &config.file_dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Io(format!("creating {}", dir.display()), e))?;
            return Ok(Some(Transport::File(
                AsyncFileTransport::<Tokio1Executor>::new(dir),
            )));
        }
        if config.host.is_empty() {
            return Ok(None);
        }
        let builder = match config.tls {
            TlsMode::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host),
            TlsMode::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
                .map_err(|e| Error::Config(format!("smtp: {e}")))?,
            TlsMode::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host)
                .map_err(|e| Error::Config(format!("smtp: {e}")))?,
        };
        let mut builder = builder.port(config.port()).timeout(Some(config.timeout()));
        if let (Some(user), Some(password)) = (&config.user, &config.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Some(Transport::Smtp(builder.build())))
    }

    pub async fn send(&self, message: Message) -> Result<(), SendFailure> {
        match self {
            Transport::Smtp(t) => match t.send(message).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_permanent() => Err(SendFailure::Permanent(e.to_string())),
                Err(e) => Err(SendFailure::Transient(e.to_string())),
            },
            Transport::File(t) => t
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| SendFailure::Transient(e.to_string())),
        }
    }
}

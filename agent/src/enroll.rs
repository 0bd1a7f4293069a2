//! Enrollment: trade a clinic's code for an agent id and token, and keep them.

use chrono::Utc;
use onshi_shared::{AgentPolicy, EnrollRequest, SCHEMA_VERSION, Validate};

use crate::config::AgentConfig;
use crate::error::AgentError;
use crate::identity::{AgentToken, Identity};
use crate::sources::{self, AGENT_VERSION, Ctx, Notes};
use crate::transport::{Transport, TransportOptions};

/// Enrolls with the server named in the settings and writes `identity.json`. Refuses to replace
/// an existing identity unless `force` is set.
pub async fn enroll(cfg: &AgentConfig, code: &str, force: bool) -> Result<Identity, AgentError> {
    let server = cfg
        .server
        .clone()
        .ok_or_else(|| AgentError::Config("enroll needs --server URL".into()))?;
    let path = cfg.identity_path();
    if let Some(existing) = Identity::load(&path)?
        && !force
    {
        return Err(AgentError::AlreadyEnrolled {
            agent_id: existing.agent_id,
        });
    }

    let ctx = Ctx::new(cfg, AgentPolicy::default(), Default::default(), Utc::now());
    let mut notes = Notes::default();
    let request = EnrollRequest {
        schema: SCHEMA_VERSION,
        code: code.trim().to_string(),
        hostname: sources::system::hostname(&ctx, &mut notes),
        agent_version: AGENT_VERSION.to_string(),
        os: sources::system::os_name(&ctx, &mut notes),
    };
    request.validate()?;

    let transport = Transport::new(&server, &transport_options(cfg))?;
    let response = transport.enroll(&request).await?;
    let identity = Identity {
        server,
        agent_id: response.agent_id,
        token: AgentToken::new(response.token),
        clinic_name: response.clinic_name,
        enrolled_at: Utc::now(),
        policy: response.policy,
    };
    identity.save(&path)?;
    tracing::info!(agent_id = %identity.agent_id, clinic = %identity.clinic_name, "enrolled");
    Ok(identity)
}

/// HTTP client settings from the agent settings.
pub fn transport_options(cfg: &AgentConfig) -> TransportOptions {
    TransportOptions {
        connect_timeout: cfg.connect_timeout(),
        request_timeout: cfg.request_timeout(),
        ca_cert: cfg.ca_cert.clone(),
    }
}

//! What a staff member's scope lets them reach, checked before any page shows or any action
//! changes a single thing (lists and counts filter in the store, through the queries' `reach`).
//! Outside the scope is "not found", exactly as for an id that does not exist, so a guessed id
//! tells nothing.

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::AppState;
use super::session::Staff;
use crate::Error;
use crate::domain::Reach;

pub const NO_ALERT: &str = "このアラートは見つかりません";
pub const NO_TERMINAL: &str = "この端末は見つかりません";
pub const NO_CLINIC: &str = "この医療機関は見つかりません";

/// The clinic, if the reach allows it.
pub fn clinic(reach: &Reach, id: i64) -> Result<(), Error> {
    if reach.allows(id) {
        Ok(())
    } else {
        Err(Error::NotFound(NO_CLINIC.into()))
    }
}

/// The alert, if it exists and its clinic is reached.
pub async fn alert(state: &AppState, reach: &Reach, id: i64) -> Result<(), Error> {
    if reach.is_all() {
        return Ok(());
    }
    match state.store.alerts().alert(id).await? {
        Some(a) if reach.allows(a.clinic_id) => Ok(()),
        _ => Err(Error::NotFound(NO_ALERT.into())),
    }
}

/// The alerts of `ids` whose clinics are reached (in the order given).
pub async fn alerts(state: &AppState, reach: &Reach, ids: Vec<i64>) -> Result<Vec<i64>, Error> {
    if reach.is_all() || ids.is_empty() {
        return Ok(ids);
    }
    let reached: std::collections::HashSet<i64> = state
        .store
        .alerts()
        .alerts_by_id(&ids)
        .await?
        .into_iter()
        .filter(|a| reach.allows(a.clinic_id))
        .map(|a| a.id)
        .collect();
    Ok(ids.into_iter().filter(|id| reached.contains(id)).collect())
}

/// The terminal's clinic, if the terminal exists and its clinic is reached.
pub async fn terminal(state: &AppState, reach: &Reach, id: Uuid) -> Result<i64, Error> {
    match state.store.fleet().terminal_detail(id).await? {
        Some(t) if reach.allows(t.clinic_id) => Ok(t.clinic_id),
        _ => Err(Error::NotFound(NO_TERMINAL.into())),
    }
}

/// What a dashboard route's `{id}` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Clinic,
    Terminal,
    Alert,
    Mail,
}

fn target_of(route: &str) -> Option<Target> {
    [
        ("/clinics/{id}", Target::Clinic),
        ("/terminals/{id}", Target::Terminal),
        ("/alerts/{id}", Target::Alert),
        ("/outbox/{id}", Target::Mail),
    ]
    .into_iter()
    .find(|(prefix, _)| {
        route
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
    .map(|(_, t)| t)
}

/// Whether what `id` names is inside the reach (an id that does not parse, or names nothing,
/// is not).
async fn reached(state: &AppState, reach: &Reach, target: Target, id: &str) -> Result<bool, Error> {
    Ok(match target {
        Target::Clinic => id.parse().is_ok_and(|c| reach.allows(c)),
        Target::Terminal => match Uuid::parse_str(id) {
            Ok(t) => terminal(state, reach, t).await.is_ok(),
            Err(_) => false,
        },
        Target::Alert => match id.parse() {
            Ok(a) => alert(state, reach, a).await.is_ok(),
            Err(_) => false,
        },
        Target::Mail => match id.parse() {
            Ok(m) => state
                .store
                .outbox()
                .outbox_mail(m)
                .await?
                .and_then(|(row, _)| row.clinic_id)
                .is_some_and(|c| reach.allows(c)),
            Err(_) => false,
        },
    })
}

/// Every dashboard route with an `{id}` (a clinic and all under it, a terminal, an alert, a
/// mail) answers 404 to a staff member whose scope does not reach it, before its handler runs:
/// pages, forms and confirmations alike. The checked staff member is handed to the handler.
pub async fn guard(
    State(state): State<AppState>,
    route: Option<MatchedPath>,
    params: RawPathParams,
    request: Request,
    next: Next,
) -> Response {
    let target = route.as_ref().and_then(|r| target_of(r.as_str()));
    let id = params
        .iter()
        .find(|(k, _)| *k == "id")
        .map(|(_, v)| v.to_string());
    let (Some(target), Some(id)) = (target, id) else {
        return next.run(request).await;
    };
    let (mut parts, body) = request.into_parts();
    let staff = match Staff::from_request_parts(&mut parts, &state).await {
        Ok(staff) => staff,
        Err(refused) => return refused.into_response(),
    };
    if !staff.reach.is_all() {
        match reached(&state, &staff.reach, target, &id).await {
            Ok(true) => {}
            Ok(false) => {
                let message = match target {
                    Target::Clinic => NO_CLINIC,
                    Target::Terminal => NO_TERMINAL,
                    Target::Alert => NO_ALERT,
                    Target::Mail => "このメールは見つかりません",
                };
                return super::message_in_layout(
                    &staff,
                    StatusCode::NOT_FOUND,
                    "見つかりません",
                    message,
                    "/",
                );
            }
            Err(e) => return super::PageFailure::from(e).into_response(),
        }
    }
    parts.extensions.insert(staff);
    next.run(Request::from_parts(parts, body)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_with_an_id_name_what_it_is() {
        assert_eq!(target_of("/clinics/{id}"), Some(Target::Clinic));
        assert_eq!(
            target_of("/clinics/{id}/contacts/{contact}/delete"),
            Some(Target::Clinic)
        );
        assert_eq!(
            target_of("/terminals/{id}/accounts"),
            Some(Target::Terminal)
        );
        assert_eq!(target_of("/alerts/{id}/ack"), Some(Target::Alert));
        assert_eq!(target_of("/outbox/{id}"), Some(Target::Mail));
        assert_eq!(target_of("/clinics/new"), None);
        assert_eq!(target_of("/alerts/bulk"), None);
        assert_eq!(target_of("/clinics/{idx}"), None);
    }
}

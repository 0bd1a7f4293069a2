//! The signed-in staff member's own account: changing the password.

use askama::Template;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::Deserialize;

use super::client::ClientAddr;
use super::format::Nav;
use super::session::{AuthFailure, Staff};
use super::{AppState, PageFailure};

#[derive(Template)]
#[template(path = "password.html")]
pub struct PasswordPage {
    pub nav: Nav,
    pub error: Option<String>,
}

/// `GET /account/password`
pub async fn password_page(staff: Staff) -> Result<Html<String>, PageFailure> {
    Ok(Html(
        PasswordPage {
            nav: Nav::new(&staff, ""),
            error: None,
        }
        .render()?,
    ))
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    confirm: String,
}

fn password_refused(
    staff: &Staff,
    status: StatusCode,
    message: &str,
) -> Result<Response, AuthFailure> {
    let html = PasswordPage {
        nav: Nav::new(staff, ""),
        error: Some(message.to_string()),
    }
    .render()
    .map_err(crate::Error::from)?;
    Ok((status, Html(html)).into_response())
}

/// `POST /account/password`: every session of the user ends, this one too. Guessing the
/// current password is throttled like a login (the same counts and password-check slots).
pub async fn change_password(
    State(state): State<AppState>,
    staff: Staff,
    ClientAddr(addr): ClientAddr,
    Form(form): Form<PasswordForm>,
) -> Result<Response, AuthFailure> {
    staff.check_csrf(&form.csrf)?;
    let Ok(_permit) = state.login_permits.clone().try_acquire_owned() else {
        return password_refused(
            &staff,
            StatusCode::TOO_MANY_REQUESTS,
            "ただいま混み合っています。少し待ってからお試しください。",
        );
    };
    if state
        .throttle
        .begin(&staff.user.name, &addr, Utc::now())
        .is_err()
    {
        return password_refused(
            &staff,
            StatusCode::TOO_MANY_REQUESTS,
            "続けて失敗したため、しばらく受け付けません。時間をおいてお試しください。",
        );
    }
    let changed = state
        .desk
        .change_own_password(
            &staff.actor(),
            &form.current,
            &form.new,
            &form.confirm,
            Utc::now(),
        )
        .await;
    match changed {
        Ok(()) => {
            state.throttle.succeeded(&staff.user.name, &addr);
            Ok(Redirect::to("/login").into_response())
        }
        Err(e) => match e.refusal() {
            Some(message) => password_refused(&staff, StatusCode::UNPROCESSABLE_ENTITY, message),
            None => Err(e.into()),
        },
    }
}

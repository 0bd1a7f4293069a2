//! The signed-in staff member's own account: changing the password.

use askama::Template;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::Deserialize;

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
    csrf: String,
    current: String,
    new: String,
    confirm: String,
}

/// `POST /account/password`: every session of the user ends, this one too.
pub async fn change_password(
    State(state): State<AppState>,
    staff: Staff,
    Form(form): Form<PasswordForm>,
) -> Result<Response, AuthFailure> {
    staff.check_csrf(&form.csrf)?;
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
        Ok(()) => Ok(Redirect::to("/login").into_response()),
        Err(e) => match e.refusal() {
            Some(message) => {
                let html = PasswordPage {
                    nav: Nav::new(&staff, ""),
                    error: Some(message.to_string()),
                }
                .render()
                .map_err(crate::Error::from)?;
                Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(html)).into_response())
            }
            None => Err(e.into()),
        },
    }
}

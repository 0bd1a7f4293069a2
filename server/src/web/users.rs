//! The users page (admins of the whole fleet only): staff accounts with their role and scope,
//! and the clinic groups scopes can name.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::Utc;
use std::collections::HashMap;

use super::format::Nav;
use super::session::{AuthFailure, FleetAdmin, Staff};
use super::{AppState, PageFailure};
use crate::Error;
use crate::desk::users::scope_words;
use crate::domain::{ClinicGroup, PREFECTURES, Reach, Role, Scope, User, actor_label_ja};
use crate::jst::time_ja;

pub struct UserRow {
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    /// 「全体」 or the prefectures and groups.
    pub scope: String,
    pub limited: bool,
    pub prefectures: Vec<String>,
    pub groups: Vec<i64>,
}

impl UserRow {
    pub fn has_prefecture(&self, p: &str) -> bool {
        self.prefectures.iter().any(|x| x == p)
    }

    pub fn has_group(&self, id: &i64) -> bool {
        self.groups.contains(id)
    }
}

/// An API token as the users page lists it.
pub struct TokenRow {
    pub name: String,
    pub role: Role,
    pub scope: String,
    pub created: String,
    pub last_used: String,
    pub revoked: bool,
}

#[derive(Template)]
#[template(path = "users.html")]
pub struct UsersPage {
    pub nav: Nav,
    pub users: Vec<UserRow>,
    pub tokens: Vec<TokenRow>,
    /// A new API token (name, token), shown once.
    pub new_token: Option<(String, String)>,
    pub groups: Vec<ClinicGroup>,
    pub prefectures: Vec<&'static str>,
    /// A generated password, shown once after a create.
    pub created: Option<(String, String)>,
    pub error: Option<String>,
}

/// A stored scope in words, its groups by name.
fn scope_label(scope: Option<&Scope>, groups: &[ClinicGroup]) -> String {
    let Some(s) = scope else {
        return "全体".into();
    };
    let names: Vec<&str> = s
        .groups
        .iter()
        .map(|id| {
            groups
                .iter()
                .find(|g| g.id == *id)
                .map_or("(削除されたグループ)", |g| g.name.as_str())
        })
        .collect();
    scope_words(&s.prefectures, &names)
}

fn row(u: User, groups: &[ClinicGroup]) -> UserRow {
    let scope = scope_label(u.scope.as_ref(), groups);
    let (limited, prefectures, ids) = match u.scope {
        None => (false, Vec::new(), Vec::new()),
        Some(s) => (true, s.prefectures, s.groups),
    };
    UserRow {
        name: u.name,
        role: u.role,
        disabled: u.disabled,
        scope,
        limited,
        prefectures,
        groups: ids,
    }
}

/// What the users page shows once after an action.
#[derive(Default)]
struct Shown {
    password: Option<(String, String)>,
    token: Option<(String, String)>,
    error: Option<String>,
}

async fn users_page(
    state: &AppState,
    staff: &Staff,
    shown: Shown,
) -> Result<Response, PageFailure> {
    let store = state.store.staff();
    let groups = store.clinic_groups().await?;
    let tokens = store
        .api_tokens()
        .await?
        .into_iter()
        .map(|t| TokenRow {
            scope: scope_label(t.scope.as_ref(), &groups),
            name: t.name,
            role: t.role,
            created: format!(
                "{} ({})",
                time_ja(t.created_at),
                actor_label_ja(&t.created_by)
            ),
            last_used: t.last_used_at.map_or_else(|| "未使用".into(), time_ja),
            revoked: t.revoked_at.is_some(),
        })
        .collect();
    let users = store
        .users()
        .await?
        .into_iter()
        .map(|u| row(u, &groups))
        .collect();
    let status = if shown.error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let html = UsersPage {
        nav: Nav::new(staff, "users"),
        users,
        tokens,
        new_token: shown.token,
        groups,
        prefectures: PREFECTURES.to_vec(),
        created: shown.password,
        error: shown.error,
    }
    .render()?;
    Ok((status, Html(html)).into_response())
}

/// `GET /users`
pub async fn page(
    State(state): State<AppState>,
    FleetAdmin(staff): FleetAdmin,
) -> Result<Response, PageFailure> {
    users_page(&state, &staff, Shown::default()).await
}

/// A posted form: single fields, and the repeated `prefecture` and `group` of a scope.
struct Posted {
    fields: HashMap<String, String>,
    prefectures: Vec<String>,
    groups: Vec<i64>,
    bad_group: bool,
}

impl Posted {
    fn parse(body: &[u8]) -> Posted {
        let mut p = Posted {
            fields: HashMap::new(),
            prefectures: Vec::new(),
            groups: Vec::new(),
            bad_group: false,
        };
        for (k, v) in url::form_urlencoded::parse(body) {
            match &*k {
                "prefecture" => p.prefectures.push(v.into_owned()),
                "group" => match v.parse() {
                    Ok(id) => p.groups.push(id),
                    Err(_) => p.bad_group = true,
                },
                _ => {
                    p.fields.insert(k.into_owned(), v.into_owned());
                }
            }
        }
        p
    }

    fn get(&self, k: &str) -> &str {
        self.fields.get(k).map(String::as_str).unwrap_or("")
    }

    fn role(&self) -> Result<Role, Error> {
        Role::parse(self.get("role")).ok_or_else(|| Error::Invalid("役割を選んでください".into()))
    }

    /// The role and the scope a user or token form asks for.
    fn access(&self) -> Result<(Role, Option<Scope>), Error> {
        Ok((self.role()?, self.scope()?))
    }

    /// `scope=all` (the whole fleet) or `scope=limited` with the ticked prefectures and groups.
    fn scope(&self) -> Result<Option<Scope>, Error> {
        if self.bad_group {
            return Err(Error::Invalid(
                "医療機関グループの指定が正しくありません".into(),
            ));
        }
        match self.get("scope") {
            "all" => Ok(None),
            "limited" => Ok(Some(Scope {
                prefectures: self.prefectures.clone(),
                groups: self.groups.clone(),
            })),
            _ => Err(Error::Invalid("担当範囲を選んでください".into())),
        }
    }
}

/// The users page after an action: with what it shows once, or with the refusal (an error
/// that is not the user's to mend goes up).
async fn answer(
    state: &AppState,
    staff: &Staff,
    done: Result<Shown, Error>,
) -> Result<Response, AuthFailure> {
    let shown = match done {
        Ok(shown) => shown,
        Err(e) => match e.refusal() {
            Some(message) => Shown {
                error: Some(message.to_string()),
                ..Shown::default()
            },
            None => return Err(e.into()),
        },
    };
    Ok(users_page(state, staff, shown).await.into_response())
}

/// Back to the users page after an action that shows nothing once, or the page with the
/// refusal.
async fn back(
    state: &AppState,
    staff: &Staff,
    done: Result<(), Error>,
) -> Result<Response, AuthFailure> {
    match done {
        Ok(()) => Ok(Redirect::to("/users").into_response()),
        Err(e) => answer(state, staff, Err(e)).await,
    }
}

/// `POST /users`: a new account; the generated password is shown once.
pub async fn create(
    State(state): State<AppState>,
    FleetAdmin(staff): FleetAdmin,
    body: Bytes,
) -> Result<Response, AuthFailure> {
    let form = Posted::parse(&body);
    staff.check_csrf(form.get("csrf"))?;
    let name = form.get("name").trim().to_string();
    let done = async {
        let (role, scope) = form.access()?;
        state
            .desk
            .add_user(&staff.actor(), &name, role, scope, None, Utc::now())
            .await
    }
    .await;
    let shown = done.map(|password| Shown {
        password: password.map(|p| (name, p)),
        ..Shown::default()
    });
    answer(&state, &staff, shown).await
}

/// `POST /users/{name}/access`: role and scope.
pub async fn access(
    State(state): State<AppState>,
    FleetAdmin(staff): FleetAdmin,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, AuthFailure> {
    let form = Posted::parse(&body);
    staff.check_csrf(form.get("csrf"))?;
    let done = async {
        let (role, scope) = form.access()?;
        if name == staff.user.name && (role != Role::Admin || scope.is_some()) {
            return Err(Error::Invalid(
                "自分自身の権限は下げられません（ほかの全体管理者に頼んでください）".into(),
            ));
        }
        state
            .desk
            .set_user_access(&staff.actor(), &name, role, scope, Utc::now())
            .await
    }
    .await;
    back(&state, &staff, done).await
}

/// `POST /users/{name}/disable` and `/enable`.
pub async fn set_disabled(
    State(state): State<AppState>,
    FleetAdmin(staff): FleetAdmin,
    Path((name, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, AuthFailure> {
    let form = Posted::parse(&body);
    staff.check_csrf(form.get("csrf"))?;
    let done = match action.as_str() {
        "disable" if name == staff.user.name => {
            Err(Error::Invalid("自分自身は無効にできません".into()))
        }
        "disable" | "enable" => {
            state
                .desk
                .set_user_disabled(&staff.actor(), &name, action == "disable", Utc::now())
                .await
        }
        _ => Err(Error::NotFound("この操作はありません".into())),
    };
    back(&state, &staff, done).await
}

/// `POST /tokens`: a new API token, shown once on the page that answers.
pub async fn create_token(
    State(state): State<AppState>,
    FleetAdmin(staff): FleetAdmin,
    body: Bytes,
) -> Result<Response, AuthFailure> {
    let form = Posted::parse(&body);
    staff.check_csrf(form.get("csrf"))?;
    let name = form.get("name").trim().to_string();
    let done = async {
        let (role, scope) = form.access()?;
        state
            .desk
            .create_token(&staff.actor(), &name, role, scope, Utc::now())
            .await
    }
    .await;
    let shown = done.map(|token| Shown {
        token: Some((name, token)),
        ..Shown::default()
    });
    answer(&state, &staff, shown).await
}

/// `POST /tokens/{name}/revoke`
pub async fn revoke_token(
    State(state): State<AppState>,
    FleetAdmin(staff): FleetAdmin,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, AuthFailure> {
    let form = Posted::parse(&body);
    staff.check_csrf(form.get("csrf"))?;
    let done = state
        .desk
        .revoke_token(&staff.actor(), &name, Utc::now())
        .await;
    back(&state, &staff, done).await
}

/// `POST /groups`: a new clinic group.
pub async fn create_group(
    State(state): State<AppState>,
    FleetAdmin(staff): FleetAdmin,
    body: Bytes,
) -> Result<Response, AuthFailure> {
    let form = Posted::parse(&body);
    staff.check_csrf(form.get("csrf"))?;
    match state
        .desk
        .create_group(&staff.actor(), form.get("name"), Utc::now())
        .await
    {
        Ok(id) => Ok(Redirect::to(&format!("/groups/{id}")).into_response()),
        Err(e) => answer(&state, &staff, Err(e)).await,
    }
}

#[derive(Template)]
#[template(path = "group.html")]
pub struct GroupPage {
    pub nav: Nav,
    pub group: ClinicGroup,
    pub clinics: Vec<(i64, String)>,
    /// Users limited to the group.
    pub users: Vec<String>,
    pub error: Option<String>,
}

async fn group_page(
    state: &AppState,
    staff: &Staff,
    id: i64,
    error: Option<String>,
) -> Result<Response, PageFailure> {
    let store = state.store.staff();
    let Some(group) = store
        .clinic_groups()
        .await?
        .into_iter()
        .find(|g| g.id == id)
    else {
        return Ok(super::message_in_layout(
            staff,
            StatusCode::NOT_FOUND,
            "見つかりません",
            "このグループは見つかりません",
            "/users",
        ));
    };
    let users = store
        .users()
        .await?
        .into_iter()
        .filter(|u| u.scope.as_ref().is_some_and(|s| s.groups.contains(&id)))
        .map(|u| u.name)
        .collect();
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let html = GroupPage {
        nav: Nav::new(staff, "users"),
        clinics: store.group_clinics(id).await?,
        group,
        users,
        error,
    }
    .render()?;
    Ok((status, Html(html)).into_response())
}

/// `GET /groups/{id}`
pub async fn group(
    State(state): State<AppState>,
    FleetAdmin(staff): FleetAdmin,
    Path(id): Path<i64>,
) -> Result<Response, PageFailure> {
    group_page(&state, &staff, id, None).await
}

/// The clinic a member form names: its id, or its medical institution code (10 digits).
async fn clinic_named(state: &AppState, given: &str) -> Result<i64, Error> {
    let given = given.trim();
    let fleet = state.store.fleet();
    let found = if given.len() == 10 && given.bytes().all(|b| b.is_ascii_digit()) {
        fleet
            .clinic_list(Some(given), 0, 1, &Reach::All)
            .await?
            .1
            .into_iter()
            .find(|c| c.code.as_deref() == Some(given))
            .map(|c| c.id)
    } else if let Ok(id) = given.parse::<i64>() {
        fleet.clinic_detail(id).await?.map(|_| id)
    } else {
        None
    };
    found.ok_or_else(|| {
        Error::Invalid(format!(
            "医療機関 {given} は見つかりません（医療機関の番号か 10 桁の医療機関コードを入力してください）"
        ))
    })
}

/// `POST /groups/{id}/members`: adds a clinic (`clinic`: its number or its code), or with
/// `remove=<clinic id>` takes one out.
pub async fn members(
    State(state): State<AppState>,
    FleetAdmin(staff): FleetAdmin,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Response, AuthFailure> {
    let form = Posted::parse(&body);
    staff.check_csrf(form.get("csrf"))?;
    let done = async {
        let (clinic, member) = match form.get("remove") {
            "" => (clinic_named(&state, form.get("clinic")).await?, true),
            remove => (
                remove
                    .parse()
                    .map_err(|_| Error::Invalid("外す医療機関の指定が正しくありません".into()))?,
                false,
            ),
        };
        state
            .desk
            .set_group_member(&staff.actor(), id, clinic, member, Utc::now())
            .await
    }
    .await;
    match done {
        Ok(()) => Ok(Redirect::to(&format!("/groups/{id}")).into_response()),
        Err(e) => match e.refusal() {
            Some(message) => Ok(group_page(&state, &staff, id, Some(message.to_string()))
                .await
                .into_response()),
            None => Err(e.into()),
        },
    }
}

/// `POST /groups/{id}/delete`
pub async fn delete_group(
    State(state): State<AppState>,
    FleetAdmin(staff): FleetAdmin,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Response, AuthFailure> {
    let form = Posted::parse(&body);
    staff.check_csrf(form.get("csrf"))?;
    let done = state
        .desk
        .delete_group(&staff.actor(), id, Utc::now())
        .await;
    back(&state, &staff, done).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_posted_scope_is_the_whole_fleet_or_what_was_ticked() {
        let p = Posted::parse(b"scope=all&prefecture=%E5%8C%97%E6%B5%B7%E9%81%93&role=viewer");
        assert_eq!(p.scope().ok(), Some(None));
        assert_eq!(p.role().ok(), Some(Role::Viewer));
        let p = Posted::parse(
            b"scope=limited&prefecture=%E5%8C%97%E6%B5%B7%E9%81%93&prefecture=%E6%9D%B1%E4%BA%AC%E9%83%BD&group=3",
        );
        assert_eq!(
            p.scope().ok(),
            Some(Some(Scope {
                prefectures: vec!["北海道".into(), "東京都".into()],
                groups: vec![3],
            }))
        );
        assert!(Posted::parse(b"scope=limited&group=x").scope().is_err());
        assert!(Posted::parse(b"role=root").role().is_err());
        assert!(Posted::parse(b"").scope().is_err());
    }
}

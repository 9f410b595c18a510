//! Signing in and out of the dashboard. A browser signs in by pasting an API
//! key; the key is checked against the grid's keys and kept in an `HttpOnly`,
//! `SameSite=Strict` cookie that the front door reads on dashboard paths only.

use super::layout::{self, csrf, Nav, Page};
use super::Viewer;
use crate::backend::Backend;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, Response, StatusCode};
use axum::response::{IntoResponse, Redirect};
use gridiron_domain::auth::{find_key, Credential};
use gridiron_domain::dashboard::KEY_COOKIE;
use maud::html;
use std::sync::Arc;

type Role = Arc<dyn Backend>;

/// Where to go after signing in: a dashboard page only (never another site).
fn next_page(prefix: &str, next: Option<&str>) -> String {
    let home = format!("{prefix}/ui/");
    match next {
        Some(n) if n.starts_with(&format!("{prefix}/ui")) && !n.starts_with("//") => n.to_string(),
        Some(n) if prefix.is_empty() && n.starts_with("/ui") => n.to_string(),
        _ => home,
    }
}

/// `GET /ui/login`: the sign-in form (a signed-in browser goes on).
pub(crate) async fn form(State(role): State<Role>, req: Request<Body>) -> Response<Body> {
    let (parts, _) = req.into_parts();
    let next = super::query_param(parts.uri.query(), "next");
    let v = Viewer::unchecked(&parts, &role);
    if v.signed_in() {
        v.finish(Redirect::to(&next_page(&v.prefix, next.as_deref())).into_response())
    } else {
        sign_in_page(&v, next.as_deref(), None, StatusCode::OK)
    }
}

/// `POST /ui/login`: checks the pasted key; on success keeps it in the cookie.
pub(crate) async fn sign_in(State(role): State<Role>, req: Request<Body>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let v = Viewer::unchecked(&parts, &role);
    let fields = match v.form(body).await {
        Ok(f) => f,
        Err(refused) => return refused,
    };
    let token = fields.get("token").map(|t| t.trim()).unwrap_or_default();
    let next = fields.get("next").map(String::as_str);
    let keys = match role.keyring().keys().await {
        Ok(k) => k,
        Err(e) => return sign_in_page(&v, next, Some(&e), StatusCode::SERVICE_UNAVAILABLE),
    };
    let cred = Credential {
        name: None,
        token: token.to_string(),
    };
    if token.is_empty() || find_key(&keys, &cred).is_none() {
        tracing::info!("a dashboard sign-in with an unknown key was refused");
        return sign_in_page(
            &v,
            next,
            Some("That API key is not valid (unknown, or revoked)."),
            StatusCode::UNAUTHORIZED,
        );
    }
    let mut r = Redirect::to(&next_page(&v.prefix, next)).into_response();
    v.set_cookie(&mut r, KEY_COOKIE, token, None);
    v.finish(r)
}

/// `POST /ui/logout`: forgets the key.
pub(crate) async fn sign_out(v: Viewer, req: Request<Body>) -> Response<Body> {
    if let Err(refused) = v.form(req.into_body()).await {
        return refused;
    }
    let mut r = Redirect::to(&v.url("/login")).into_response();
    v.set_cookie(&mut r, KEY_COOKIE, "", Some(0));
    v.finish(r)
}

fn sign_in_page(
    v: &Viewer,
    next: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response<Body> {
    let body = html! {
        form.card.signin method="post" action=(v.url("/login")) {
            (csrf(v))
            input type="hidden" name="next" value=(next.unwrap_or(""));
            p { "This grid needs an API key. Paste yours to see its sessions; an admin key sees the whole grid." }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            label for="token" { "API key" }
            input #token type="password" name="token" autocomplete="off" required autofocus;
            button type="submit" { "Sign in" }
        }
    };
    layout::render_status(
        v,
        Page {
            title: "Sign in",
            nav: Nav::None,
            head: html! {},
            live: body,
            events: "",
            every: 0,
        },
        status,
    )
}

#[cfg(test)]
mod tests {
    use super::next_page;

    #[test]
    fn sign_in_returns_only_to_dashboard_pages() {
        assert_eq!(
            next_page("", Some("/ui/sessions?state=running")),
            "/ui/sessions?state=running"
        );
        assert_eq!(next_page("", Some("https://evil.example/")), "/ui/");
        assert_eq!(next_page("", Some("//evil.example/ui")), "/ui/");
        assert_eq!(next_page("", Some("/session/x")), "/ui/");
        assert_eq!(next_page("/grid", Some("/grid/ui/queue")), "/grid/ui/queue");
        assert_eq!(next_page("/grid", Some("/ui/queue")), "/grid/ui/");
        assert_eq!(next_page("", None), "/ui/");
    }
}

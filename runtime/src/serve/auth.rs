//! Who is calling: bearer tokens, each bound to one tenant or to admin.
//!
//! Tokens come from the config file. A tenant's token confines every read to rows whose
//! `tenant_id` is that tenant (every view's first key column), enforced here on the server:
//! a client cannot widen it. Admin reads every tenant and alone may change plugins.

use std::collections::BTreeMap;
use std::fmt;

use tonic::{Request, Status};

/// The identity a token grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    Admin,
    Tenant(String),
}

/// The configured tokens.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Tokens {
    by_token: BTreeMap<String, Caller>,
}

impl fmt::Debug for Tokens {
    // Tokens are secrets: list who they are for, never what they are.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.by_token.values()).finish()
    }
}

impl Tokens {
    /// Adds a token; refuses an empty or repeated one.
    pub fn insert(&mut self, token: &str, caller: Caller) -> Result<(), String> {
        if token.trim().is_empty() {
            return Err("a token must not be empty".into());
        }
        if self.by_token.insert(token.to_owned(), caller).is_some() {
            return Err("the same token is listed twice".into());
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }

    /// Resolves the `authorization: Bearer <token>` of a request.
    pub fn authenticate<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let Some(value) = request.metadata().get("authorization") else {
            return Err(Status::unauthenticated(
                "missing bearer token: send `authorization: Bearer <token>` (weir CLI: --token or WEIR_TOKEN)",
            ));
        };
        let value = value
            .to_str()
            .map_err(|_| Status::unauthenticated("the authorization header is not text"))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(|| {
                Status::unauthenticated("the authorization header must be `Bearer <token>`")
            })?;
        self.by_token
            .get(token.trim())
            .cloned()
            .ok_or_else(|| Status::unauthenticated("unknown token"))
    }
}

impl Caller {
    /// Refuses anyone but admin.
    pub fn require_admin(&self) -> Result<(), Status> {
        match self {
            Caller::Admin => Ok(()),
            Caller::Tenant(t) => Err(Status::permission_denied(format!(
                "plugin administration needs an admin token; this token is for tenant {t}"
            ))),
        }
    }
}

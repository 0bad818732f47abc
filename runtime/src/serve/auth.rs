//! Who is calling: bearer tokens, each bound to one tenant or to admin.
//!
//! Tokens come from the config file. A tenant's token confines every read to rows whose
//! `tenant_id` is that tenant (every view's first key column), enforced here on the server:
//! a client cannot widen it. Admin reads every tenant and alone may change plugins.
//!
//! This file owns the token table and the caller a token resolves to. It reads no file (the
//! configuration hands it the tokens), never shows a token in a message or a debug print, and
//! leaves filtering rows by tenant to the API.

use std::collections::BTreeMap;
use std::fmt;

use tonic::Request;

/// Why a token is refused: when it is configured, or when a request presents it (or lacks
/// one). The API maps these to `UNAUTHENTICATED` and `PERMISSION_DENIED`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("a token must not be empty")]
    Empty,
    #[error("the same token is listed twice")]
    Repeated,
    #[error(
        "missing bearer token: send `authorization: Bearer <token>` (weir CLI: --token or WEIR_TOKEN)"
    )]
    Missing,
    #[error("the authorization header is not text")]
    NotText,
    #[error("the authorization header must be `Bearer <token>`")]
    NotBearer,
    #[error("unknown token")]
    Unknown,
    #[error("plugin administration needs an admin token; this token is for tenant {0}")]
    NotAdmin(String),
}

impl TokenError {
    /// The stable, machine-readable code of the variant.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Empty => "empty_token",
            TokenError::Repeated => "repeated_token",
            TokenError::Missing => "missing_token",
            TokenError::NotText => "token_not_text",
            TokenError::NotBearer => "not_bearer",
            TokenError::Unknown => "unknown_token",
            TokenError::NotAdmin(_) => "not_admin",
        }
    }
}

/// The identity a token grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    Admin,
    Tenant(String),
}

/// The configured tokens.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Tokens {
    by_token: BTreeMap<String, (Caller, TokenId)>,
}

/// Which configured token a request presented (its position in the configuration), for
/// limits kept per token; never the token itself.
pub type TokenId = usize;

impl fmt::Debug for Tokens {
    // Tokens are secrets: list who they are for, never what they are.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.by_token.values().map(|(caller, _)| caller))
            .finish()
    }
}

impl Tokens {
    /// Adds a token; refuses an empty or repeated one.
    pub fn insert(&mut self, token: &str, caller: Caller) -> Result<(), TokenError> {
        if token.trim().is_empty() {
            return Err(TokenError::Empty);
        }
        let id = self.by_token.len();
        if self.by_token.contains_key(token) {
            return Err(TokenError::Repeated);
        }
        if self
            .by_token
            .insert(token.to_owned(), (caller, id))
            .is_some()
        {
            return Err(TokenError::Repeated);
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }

    /// Resolves the `authorization: Bearer <token>` of a request.
    pub fn authenticate<T>(&self, request: &Request<T>) -> Result<Caller, TokenError> {
        self.identify(request).map(|(caller, _)| caller)
    }

    /// Resolves a request's caller and which token it presented.
    pub fn identify<T>(&self, request: &Request<T>) -> Result<(Caller, TokenId), TokenError> {
        let value = request
            .metadata()
            .get("authorization")
            .ok_or(TokenError::Missing)?;
        let value = value.to_str().map_err(|_| TokenError::NotText)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(TokenError::NotBearer)?;
        self.lookup(token.trim()).ok_or(TokenError::Unknown)
    }

    /// The caller of `presented`, comparing it with every token in constant time: how long
    /// an answer takes says nothing about how close a guess came.
    fn lookup(&self, presented: &str) -> Option<(Caller, TokenId)> {
        use subtle::ConstantTimeEq;
        let mut found = None;
        for (token, (caller, id)) in &self.by_token {
            if bool::from(token.as_bytes().ct_eq(presented.as_bytes())) {
                found = Some((caller.clone(), *id));
            }
        }
        found
    }
}

impl Caller {
    /// Refuses anyone but admin.
    pub fn require_admin(&self) -> Result<(), TokenError> {
        match self {
            Caller::Admin => Ok(()),
            Caller::Tenant(t) => Err(TokenError::NotAdmin(t.clone())),
        }
    }
}

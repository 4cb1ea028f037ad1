//! `X-Auth-Token` authentication. Tokens are configured by the operator as
//! SHA-256 hashes with the projects they may read (`*` = every project and the
//! operator endpoints). The presented token is hashed and compared with every
//! configured hash in constant time, without early exit, so timing reveals
//! neither a near match nor which entry matched.

use axum::http::HeaderMap;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::error::ApiError;

/// One configured token, as written in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it (for logs).
    pub name: String,
    /// Hex SHA-256 of the token (`tracker hash-token` prints it).
    pub sha256: String,
    /// Projects the token may read; `*` means all, plus operator endpoints.
    pub projects: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("token `{name}`: sha256 must be 64 hex characters")]
pub struct BadTokenConfig {
    name: String,
}

#[derive(Debug, Clone)]
struct Entry {
    hash: [u8; 32],
    principal: Principal,
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub projects: Vec<String>,
}

impl Principal {
    pub fn is_operator(&self) -> bool {
        self.projects.iter().any(|p| p == "*")
    }

    pub fn may_read(&self, project: &str) -> bool {
        self.projects.iter().any(|p| p == "*" || p == project)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Auth {
    entries: Vec<Entry>,
}

pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Auth {
    pub fn new(tokens: &[TokenConfig]) -> Result<Auth, BadTokenConfig> {
        let entries = tokens
            .iter()
            .map(|t| {
                let mut hash = [0u8; 32];
                hex::decode_to_slice(t.sha256.trim(), &mut hash).map_err(|_| BadTokenConfig {
                    name: t.name.clone(),
                })?;
                Ok(Entry {
                    hash,
                    principal: Principal {
                        name: t.name.clone(),
                        projects: t.projects.clone(),
                    },
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Auth { entries })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn authenticate(&self, headers: &HeaderMap) -> Result<&Principal, ApiError> {
        let token = headers.get("x-auth-token").ok_or(ApiError::MissingToken)?;
        let presented = hash_token(token.to_str().map_err(|_| ApiError::InvalidToken)?);
        let mut found = subtle::Choice::from(0);
        let mut index = 0u64;
        for (i, e) in self.entries.iter().enumerate() {
            let hit = e.hash.ct_eq(&presented);
            index.conditional_assign(&(i as u64), hit & !found);
            found |= hit;
        }
        if bool::from(found) {
            Ok(&self.entries[index as usize].principal)
        } else {
            Err(ApiError::InvalidToken)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_tokens_authenticate_and_scope() {
        let auth = Auth::new(&[
            TokenConfig {
                name: "a".into(),
                sha256: hex::encode(hash_token("secret-a")),
                projects: vec!["p1".into()],
            },
            TokenConfig {
                name: "op".into(),
                sha256: hex::encode(hash_token("secret-op")),
                projects: vec!["*".into()],
            },
        ])
        .unwrap();
        let h = |t: &str| {
            let mut m = HeaderMap::new();
            m.insert("x-auth-token", t.parse().unwrap());
            m
        };
        let a = auth.authenticate(&h("secret-a")).unwrap();
        assert!(a.may_read("p1") && !a.may_read("p2") && !a.is_operator());
        let op = auth.authenticate(&h("secret-op")).unwrap();
        assert!(op.may_read("anything") && op.is_operator());
        assert_eq!(auth.authenticate(&h("nope")), Err(ApiError::InvalidToken));
        assert_eq!(
            auth.authenticate(&HeaderMap::new()),
            Err(ApiError::MissingToken)
        );
    }

    #[test]
    fn malformed_hash_is_a_config_error() {
        let bad = TokenConfig {
            name: "x".into(),
            sha256: "abc".into(),
            projects: vec![],
        };
        assert!(Auth::new(&[bad]).is_err());
    }
}

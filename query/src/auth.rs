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

/// A token configuration refused at start-up: each is a security mistake
/// that would otherwise pass silently.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadTokenConfig {
    #[error("token `{0}`: sha256 must be 64 hex characters (`tracker hash-token` prints one)")]
    Hash(String),
    #[error("token `{0}`: sha256 is the hash of the empty string, which no client can present")]
    EmptyToken(String),
    #[error(
        "tokens `{0}` and `{1}` have the same sha256: one token, two scopes, and which one applies \
         would depend on their order. Give each its own token"
    )]
    SameHash(String, String),
    #[error("token `{0}`: projects is empty, so it could read nothing; list project ids, or \"*\" for all")]
    NoProjects(String),
    #[error(
        "token `{0}`: a project id is blank (or padded with whitespace), which no request can name"
    )]
    BlankProject(String),
}

/// Tokens shipped in `config/tracker.example.toml`: anyone can read them.
const EXAMPLE_TOKENS: [&str; 2] = ["change-me-operator", "change-me-dashboard"];

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
        let mut entries: Vec<Entry> = Vec::with_capacity(tokens.len());
        for t in tokens {
            let mut hash = [0u8; 32];
            hex::decode_to_slice(t.sha256.trim(), &mut hash)
                .map_err(|_| BadTokenConfig::Hash(t.name.clone()))?;
            if hash == hash_token("") {
                return Err(BadTokenConfig::EmptyToken(t.name.clone()));
            }
            if t.projects.is_empty() {
                return Err(BadTokenConfig::NoProjects(t.name.clone()));
            }
            if t.projects
                .iter()
                .any(|p| p.trim().is_empty() || p.trim() != p)
            {
                return Err(BadTokenConfig::BlankProject(t.name.clone()));
            }
            if let Some(other) = entries.iter().find(|e| e.hash == hash) {
                return Err(BadTokenConfig::SameHash(
                    other.principal.name.clone(),
                    t.name.clone(),
                ));
            }
            entries.push(Entry {
                hash,
                principal: Principal {
                    name: t.name.clone(),
                    projects: t.projects.clone(),
                },
            });
        }
        Ok(Auth { entries })
    }

    /// Names of configured tokens that are the example config's, published
    /// in this repository: a deployment must not accept them.
    pub fn example_tokens(&self) -> Vec<&str> {
        let examples = EXAMPLE_TOKENS.map(hash_token);
        self.entries
            .iter()
            .filter(|e| examples.contains(&e.hash))
            .map(|e| e.principal.name.as_str())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn authenticate(&self, headers: &HeaderMap) -> Result<&Principal, ApiError> {
        // Two tokens are refused, not chosen between (the last one's scope
        // once won).
        let mut tokens = headers.get_all("x-auth-token").iter();
        let token = tokens.next().ok_or(ApiError::MissingToken)?;
        if tokens.next().is_some() {
            return Err(ApiError::DuplicateHeader("X-Auth-Token"));
        }
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

    fn token(name: &str, secret: &str, projects: &[&str]) -> TokenConfig {
        TokenConfig {
            name: name.into(),
            sha256: hex::encode(hash_token(secret)),
            projects: projects.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn unsafe_token_configurations_are_refused() {
        let bad = TokenConfig {
            sha256: "abc".into(),
            ..token("x", "s", &["p"])
        };
        assert_eq!(
            Auth::new(&[bad]).unwrap_err(),
            BadTokenConfig::Hash("x".into())
        );
        assert_eq!(
            Auth::new(&[token("e", "", &["p"])]).unwrap_err(),
            BadTokenConfig::EmptyToken("e".into())
        );
        assert_eq!(
            Auth::new(&[token("n", "s", &[])]).unwrap_err(),
            BadTokenConfig::NoProjects("n".into())
        );
        // A blank or padded project id no request can name.
        for projects in [&["p", ""][..], &["  "], &[" p"]] {
            assert_eq!(
                Auth::new(&[token("b", "s", projects)]).unwrap_err(),
                BadTokenConfig::BlankProject("b".into()),
                "{projects:?}"
            );
        }
        // The same secret under two scopes: the order would decide.
        assert_eq!(
            Auth::new(&[token("a", "s", &["p"]), token("op", "s", &["*"])]).unwrap_err(),
            BadTokenConfig::SameHash("a".into(), "op".into())
        );
    }

    #[test]
    fn the_example_configs_tokens_are_recognised() {
        let auth = Auth::new(&[
            token("mine", "a-real-secret", &["p"]),
            token("operator", "change-me-operator", &["*"]),
        ])
        .unwrap();
        assert_eq!(auth.example_tokens(), ["operator"]);
    }
}

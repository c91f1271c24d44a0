//! Bearer tokens: each team's token is configured only as its SHA-256 digest
//! (`CADRE_API_TOKENS=team:hexdigest,…`, or a file with one `team:hexdigest` per line), so the
//! deployment's configuration never holds a usable secret.
//!
//! A presented token is hashed and compared with every digest in constant time (no early exit on the
//! first differing byte, nor on the first match), so timing reveals neither a digest nor which team
//! matched. The token itself is never logged, never stored, and never part of an error message.

use std::fmt;

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// A team name, as tasks are charged to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Team(pub String);

/// A bearer token on the client side; its `Debug` is redacted so it cannot reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl ApiToken {
    /// Wraps a token.
    #[must_use]
    pub fn new(token: impl Into<String>) -> ApiToken {
        ApiToken(token.into())
    }

    /// The token, for the `Authorization` header only.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The digest a deployment is configured with for this token (lowercase hex SHA-256).
    #[must_use]
    pub fn digest_hex(&self) -> String {
        hex(&Sha256::digest(self.0.as_bytes()))
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a token configuration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokensError {
    /// An entry is not `team:hexdigest` with a 64-digit hex digest.
    #[error("token entry {index} ({shown}) is not team:sha256-hex; write `team:` and the 64 hex digits of sha256(token), e.g. from `printf %s TOKEN | sha256sum`")]
    Malformed {
        /// 1-based position of the entry.
        index: usize,
        /// The team part, or `?` (the digest part is never echoed).
        shown: String,
    },
    /// No entry at all: nobody could call the API.
    #[error(
        "no API tokens are configured; set CADRE_API_TOKENS=team:sha256hex or pass --tokens-file"
    )]
    Empty,
}

/// The configured digests, each mapped to its team.
#[derive(Clone, PartialEq, Eq)]
pub struct Tokens {
    entries: Vec<(Team, [u8; 32])>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let teams: Vec<&str> = self.entries.iter().map(|(t, _)| t.0.as_str()).collect();
        f.debug_struct("Tokens").field("teams", &teams).finish_non_exhaustive()
    }
}

fn parse_digest(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl Tokens {
    /// Reads `team:hexdigest` entries separated by commas or newlines (blank lines and `#` comments
    /// are skipped), the format of both `CADRE_API_TOKENS` and a tokens file.
    ///
    /// # Errors
    /// [`TokensError::Malformed`] for an unreadable entry, [`TokensError::Empty`] when none is given.
    pub fn parse(text: &str) -> Result<Tokens, TokensError> {
        let mut entries = Vec::new();
        let items =
            text.split([',', '\n']).map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
        for (i, item) in items.enumerate() {
            let malformed =
                |shown: &str| TokensError::Malformed { index: i + 1, shown: shown.to_owned() };
            let Some((team, digest)) = item.split_once(':') else { return Err(malformed("?")) };
            let team = team.trim();
            if team.is_empty() {
                return Err(malformed("?"));
            }
            let digest = parse_digest(digest).ok_or_else(|| malformed(team))?;
            entries.push((Team(team.to_owned()), digest));
        }
        if entries.is_empty() {
            return Err(TokensError::Empty);
        }
        Ok(Tokens { entries })
    }

    /// The teams that have a token.
    pub fn teams(&self) -> impl Iterator<Item = &Team> {
        self.entries.iter().map(|(t, _)| t)
    }

    /// The team whose digest matches `token`, compared in constant time against every entry.
    #[must_use]
    pub fn team_of(&self, token: &str) -> Option<Team> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found: Option<&Team> = None;
        for (team, digest) in &self.entries {
            let same = presented.iter().zip(digest).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
            // Keep going after a match: every request costs the same comparisons.
            if same && found.is_none() {
                found = Some(team);
            }
        }
        found.cloned()
    }

    /// The team of the request's `Authorization: Bearer TOKEN` header.
    ///
    /// # Errors
    /// [`ApiError::Unauthorized`] when the header is missing, not a bearer token, or matches no team.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Team, ApiError> {
        let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
            return Err(ApiError::Unauthorized {
                error: "no bearer token in the Authorization header".into(),
                fix: "send `Authorization: Bearer TOKEN` with your team's API token (CADRE_API_TOKEN)".into(),
            });
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let Some(token) = token else {
            return Err(ApiError::Unauthorized {
                error: "the Authorization header is not a bearer token".into(),
                fix: "send `Authorization: Bearer TOKEN`".into(),
            });
        };
        self.team_of(token).ok_or_else(|| ApiError::Unauthorized {
            error: "the bearer token matches no team of this deployment".into(),
            fix: "check CADRE_API_TOKEN against the digests the deployment is configured with"
                .into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_map_tokens_to_teams_and_nothing_leaks() {
        let a = ApiToken::new("secret-a");
        let b = ApiToken::new("secret-b");
        let config = format!(
            "alpha:{}\n# a comment\n, beta:{}",
            a.digest_hex(),
            b.digest_hex().to_uppercase()
        );
        let tokens = Tokens::parse(&config).unwrap();
        assert_eq!(tokens.team_of("secret-a"), Some(Team("alpha".into())));
        assert_eq!(tokens.team_of("secret-b"), Some(Team("beta".into())));
        assert_eq!(tokens.team_of("secret-c"), None);
        assert_eq!(format!("{a:?}"), "ApiToken(<redacted>)");
        assert!(!format!("{tokens:?}").contains(&a.digest_hex()));
    }

    #[test]
    fn malformed_entries_are_named_without_their_digest() {
        let err = Tokens::parse("alpha:abc").unwrap_err();
        assert_eq!(err, TokensError::Malformed { index: 1, shown: "alpha".into() });
        assert!(!err.to_string().contains("abc"));
        assert_eq!(Tokens::parse(" \n# only a comment\n"), Err(TokensError::Empty));
        assert!(matches!(Tokens::parse("nocolon"), Err(TokensError::Malformed { index: 1, .. })));
    }
}

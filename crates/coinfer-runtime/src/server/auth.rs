//! Who may use the server: the plan digest and the deployment [`Token`] a Hello carries,
//! compared in constant time.

use crate::error::RuntimeError;
use crate::frame::MAX_DIGEST_LEN;

/// Longest deployment token.
pub const MAX_TOKEN_LEN: usize = 128;

/// Checks that a Hello can carry `digest` (and `token`, after a separator).
pub(crate) fn check_digest(digest: &str, token: Option<&str>) -> Result<(), RuntimeError> {
    if digest.len() > MAX_DIGEST_LEN {
        return Err(RuntimeError::InvalidConfig {
            field: "digest",
            reason: format!(
                "{} bytes, the protocol carries at most {MAX_DIGEST_LEN}",
                digest.len()
            ),
        });
    }
    if let Some(token) = token
        && digest.len() + 1 + token.len() > MAX_DIGEST_LEN
    {
        return Err(RuntimeError::InvalidConfig {
            field: "token",
            reason: format!(
                "the digest, a separator and the token must fit in {MAX_DIGEST_LEN} bytes"
            ),
        });
    }
    Ok(())
}

/// A deployment token: a shared secret a client presents in its Hello. Its `Debug` form hides
/// the value, so configurations can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Token {
    fn from(secret: String) -> Self {
        Self(secret)
    }
}

impl From<&str> for Token {
    fn from(secret: &str) -> Self {
        Self(secret.to_string())
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token(<{} bytes>)", self.0.len())
    }
}

/// Checks a deployment token: 1 to [`MAX_TOKEN_LEN`] bytes, no NUL.
pub(crate) fn check_token(token: Option<&str>) -> Result<(), RuntimeError> {
    match token {
        Some(t) if t.is_empty() || t.len() > MAX_TOKEN_LEN || t.contains('\0') => {
            Err(RuntimeError::InvalidConfig {
                field: "token",
                reason: format!(
                    "must be 1..={MAX_TOKEN_LEN} bytes without NUL, not {} bytes",
                    t.len()
                ),
            })
        }
        _ => Ok(()),
    }
}

/// Compares two secrets in time that depends only on their lengths.
pub(super) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

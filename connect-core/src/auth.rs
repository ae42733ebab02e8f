//! Signing keys and the hashed form the Connect API expects.
//!
//! The start and flush calls carry `Authorization: Bearer <hashed key>`, where
//! the hashed key keeps the `signkey-<env>-` prefix and replaces the rest by
//! the hex SHA-256 of its hex-decoded bytes (PROTOCOL.md 2.1). Both the raw
//! and the hashed key are secrets: neither `Debug` nor `Display` shows them.

use sha2::{Digest, Sha256};

/// Why a signing key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("signing key is empty")]
    Empty,
    #[error("signing key is not hex after its `signkey-<env>-` prefix")]
    NotHex,
}

/// A raw signing key (`signkey-prod-<hex>`). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    raw: String,
    hashed: HashedKey,
}

/// The hashed signing key sent as a bearer token. Never printed either: it
/// authenticates as the app just as the raw key does.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HashedKey(String);

impl SigningKey {
    /// Parse and hash a key. Surrounding white space (a trailing newline from a
    /// secrets file, say) is trimmed.
    pub fn new(raw: impl Into<String>) -> Result<Self, KeyError> {
        let raw = raw.into().trim().to_owned();
        if raw.is_empty() {
            return Err(KeyError::Empty);
        }
        let (prefix, rest) = split_prefix(&raw);
        let bytes = hex::decode(rest).map_err(|_| KeyError::NotHex)?;
        let digest = Sha256::digest(&bytes);
        let hashed = HashedKey(format!("{prefix}{}", hex::encode(digest)));
        Ok(SigningKey { raw, hashed })
    }

    /// The hashed key, for the `Authorization` header.
    pub fn hashed(&self) -> &HashedKey {
        &self.hashed
    }

    /// The raw key. Named loudly so that a call to it stands out in review.
    pub fn expose_raw(&self) -> &str {
        &self.raw
    }

    /// The `signkey-<env>-` prefix (empty if the key has none), which is not secret.
    pub fn prefix(&self) -> &str {
        split_prefix(&self.raw).0
    }
}

impl HashedKey {
    /// Wrap an already hashed key (as a gateway receives it).
    pub fn from_hashed(s: impl Into<String>) -> Self {
        HashedKey(s.into())
    }

    /// The header value `Bearer <hashed>`.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// The hashed key itself. Named loudly for the same reason as [`SigningKey::expose_raw`].
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// `^signkey-[\w]+-`: the literal `signkey-`, one or more word characters, a dash.
fn split_prefix(key: &str) -> (&str, &str) {
    const LIT: &str = "signkey-";
    if let Some(after) = key.strip_prefix(LIT) {
        let word = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
        if word > 0 && after[word..].starts_with('-') {
            return key.split_at(LIT.len() + word + 1);
        }
    }
    ("", key)
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({}<redacted>)", self.prefix())
    }
}

impl std::fmt::Display for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}<redacted>", self.prefix())
    }
}

impl std::fmt::Debug for HashedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (prefix, _) = split_prefix(&self.0);
        write!(f, "HashedKey({prefix}<redacted>)")
    }
}

impl std::fmt::Display for HashedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (prefix, _) = split_prefix(&self.0);
        write!(f, "{prefix}<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_keeps_the_prefix_and_hashes_the_hex_bytes() {
        let key = SigningKey::new("signkey-prod-00ff").expect("valid key");
        // sha256 of the two bytes 0x00 0xff.
        let want = format!("signkey-prod-{}", hex::encode(Sha256::digest([0x00, 0xff])));
        assert_eq!(key.hashed().expose(), want);
        assert_eq!(key.prefix(), "signkey-prod-");
    }

    #[test]
    fn branch_and_test_prefixes_and_no_prefix() {
        assert_eq!(SigningKey::new("signkey-branch-ab").expect("ok").prefix(), "signkey-branch-");
        assert_eq!(SigningKey::new("signkey-test_1-ab").expect("ok").prefix(), "signkey-test_1-");
        let bare = SigningKey::new("abcd").expect("ok");
        assert_eq!(bare.prefix(), "");
        assert_eq!(bare.hashed().expose(), hex::encode(Sha256::digest([0xab, 0xcd])));
    }

    #[test]
    fn bad_keys_are_typed_errors() {
        assert_eq!(SigningKey::new("  "), Err(KeyError::Empty));
        assert_eq!(SigningKey::new("signkey-prod-xyz"), Err(KeyError::NotHex));
    }

    #[test]
    fn neither_debug_nor_display_shows_a_secret() {
        let key = SigningKey::new("signkey-prod-deadbeefcafe").expect("ok");
        let hashed_hex = key.hashed().expose().trim_start_matches("signkey-prod-").to_owned();
        for shown in
            [format!("{key:?}"), format!("{key}"), format!("{:?}", key.hashed()), format!("{}", key.hashed())]
        {
            assert!(!shown.contains("deadbeefcafe"), "{shown}");
            assert!(!shown.contains(&hashed_hex[..16]), "{shown}");
            assert!(shown.contains("signkey-prod-"), "{shown}");
        }
    }
}

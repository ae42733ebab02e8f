//! Session tokens: what the start call hands out and WORKER_CONNECT must bring back.
//!
//! Inngest issues an HS256 JWT (issuer `connect.inngest.com`, audience
//! `gateway.connect.inngest.com`, 5 minute lifetime) and the gateway verifies
//! it. We do the same, with HMAC-SHA256 written out over `sha2` so that no JWT
//! crate is needed: a worker that inspects its token sees the familiar shape,
//! and the gateway needs no per-token state (a token stays valid across a
//! drain's fresh gateway group). Only HS256 is accepted; the header is not
//! trusted for anything else.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const ISSUER: &str = "connect.inngest.com";
pub const AUDIENCE: &str = "gateway.connect.inngest.com";
/// The dev server's account and environment (Inngest's dev constants).
pub const DEV_ACCOUNT_ID: &str = "00000000-0000-4000-a000-000000000000";
pub const DEV_ENV_ID: &str = "00000000-0000-4000-b000-000000000000";

/// The claims we issue and check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The account id.
    pub sub: String,
    pub env: String,
    /// Seconds since the Unix epoch.
    pub iat: u64,
    pub exp: u64,
    pub entitlements: Entitlements,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entitlements {
    #[serde(rename = "appsPerConnection")]
    pub apps_per_connection: usize,
}

/// Why a token was refused. All of them close the socket with
/// 1008 `connect_authentication_failed`; the variant is for logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no session token")]
    Missing,
    #[error("session token is not a JWT")]
    Malformed,
    #[error("session token signature does not match")]
    BadSignature,
    #[error("session token has expired")]
    Expired,
    #[error("session token was issued for another audience")]
    WrongAudience,
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// Issue a token valid for `lifetime` from `now`.
pub fn issue(secret: &[u8], now: SystemTime, lifetime: Duration, apps_per_connection: usize) -> String {
    let iat = unix_secs(now);
    let claims = Claims {
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sub: DEV_ACCOUNT_ID.into(),
        env: DEV_ENV_ID.into(),
        iat,
        exp: iat + lifetime.as_secs().max(1),
        entitlements: Entitlements { apps_per_connection },
    };
    let claims = serde_json::to_vec(&claims).unwrap_or_default();
    let signing_input = format!("{}.{}", b64url(HEADER.as_bytes()), b64url(&claims));
    let sig = hmac_sha256(secret, signing_input.as_bytes());
    format!("{signing_input}.{}", b64url(&sig))
}

/// Check a token's signature, audience and expiry at `now`.
pub fn verify(secret: &[u8], token: &str, now: SystemTime) -> Result<Claims, TokenError> {
    if token.is_empty() {
        return Err(TokenError::Missing);
    }
    let (signing_input, sig) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let (header, claims) = signing_input.split_once('.').ok_or(TokenError::Malformed)?;
    let sig = b64url_decode(sig).ok_or(TokenError::Malformed)?;
    let header = b64url_decode(header).ok_or(TokenError::Malformed)?;
    let header: serde_json::Value = serde_json::from_slice(&header).map_err(|_| TokenError::Malformed)?;
    if header["alg"] != "HS256" {
        return Err(TokenError::Malformed);
    }
    if !constant_time_eq(&sig, &hmac_sha256(secret, signing_input.as_bytes())) {
        return Err(TokenError::BadSignature);
    }
    let claims = b64url_decode(claims).ok_or(TokenError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&claims).map_err(|_| TokenError::Malformed)?;
    if claims.aud != AUDIENCE || claims.iss != ISSUER {
        return Err(TokenError::WrongAudience);
    }
    if unix_secs(now) >= claims.exp {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// HMAC (RFC 2104) over SHA-256.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Unpadded base64url, as JWTs use.
fn b64url(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"this-does-not-need-to-be-secret";

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex::encode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn base64url_round_trips_every_length() {
        for len in 0..10 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 250) as u8).collect();
            assert_eq!(b64url_decode(&b64url(&data)).as_deref(), Some(&data[..]));
        }
        assert_eq!(b64url(b"\xfb\xff"), "-_8");
    }

    #[test]
    fn a_token_verifies_until_it_expires() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let token = issue(SECRET, t0, Duration::from_secs(300), 10);
        let claims = verify(SECRET, &token, t0 + Duration::from_secs(299)).expect("valid");
        assert_eq!(claims.entitlements.apps_per_connection, 10);
        assert_eq!(claims.sub, DEV_ACCOUNT_ID);
        assert_eq!(verify(SECRET, &token, t0 + Duration::from_secs(300)), Err(TokenError::Expired));
    }

    #[test]
    fn tampering_and_other_secrets_are_refused() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let token = issue(SECRET, t0, Duration::from_secs(300), 10);
        assert_eq!(verify(b"other", &token, t0), Err(TokenError::BadSignature));
        let mut forged = token.clone();
        forged.insert(token.find('.').expect("dot") + 2, 'x');
        assert!(verify(SECRET, &forged, t0).is_err());
        assert_eq!(verify(SECRET, "", t0), Err(TokenError::Missing));
        assert_eq!(verify(SECRET, "abc", t0), Err(TokenError::Malformed));
    }
}

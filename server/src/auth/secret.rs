//! Bearer secrets: the format of tenant API keys, recipients' link tokens and the relay's
//! SMTP AUTH accounts.
//!
//! Both are a random *selector* (for the database lookup) followed by a 256-bit random
//! *secret*. Only SHA-256 of the secret is stored, and it is compared in constant time, so a
//! database leak yields no usable key and response timing reveals nothing about the secret.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix that makes an API key recognisable in logs and secret scanners.
pub const API_KEY_PREFIX: &str = "fk_";
/// Prefix of a relay account's username (`fr_` + the selector); the password is the secret.
pub const RELAY_USER_PREFIX: &str = "fr_";
const SELECTOR_BYTES: usize = 9;
const SELECTOR_CHARS: usize = 12;
const SECRET_BYTES: usize = 32;
const SECRET_CHARS: usize = 43;

/// A freshly minted secret: the text handed out once, and what the database keeps.
pub struct MintedSecret {
    /// The full bearer text (API key or link token), shown to its owner only now.
    pub text: String,
    /// Lookup key stored in clear.
    pub selector: String,
    /// SHA-256 of the secret part.
    pub secret_hash: Vec<u8>,
}

/// The two halves of a presented bearer secret.
pub struct PresentedSecret<'a> {
    /// Lookup key.
    pub selector: &'a str,
    secret: &'a str,
}

/// Randomness failed; the caller cannot mint a secret.
#[derive(Debug, thiserror::Error)]
#[error("the system random generator failed")]
pub struct RandomError;

fn random_bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| RandomError)?;
    Ok(bytes)
}

fn mint(prefix: &str) -> Result<MintedSecret, RandomError> {
    let selector = URL_SAFE_NO_PAD.encode(random_bytes::<SELECTOR_BYTES>()?);
    let secret = URL_SAFE_NO_PAD.encode(random_bytes::<SECRET_BYTES>()?);
    Ok(MintedSecret {
        text: format!("{prefix}{selector}{secret}"),
        secret_hash: hash_secret(&secret),
        selector,
    })
}

/// Mints a tenant API key (`fk_…`).
pub fn mint_api_key() -> Result<MintedSecret, RandomError> {
    mint(API_KEY_PREFIX)
}

/// Mints a recipient link token (55 URL-safe characters).
pub fn mint_link_token() -> Result<MintedSecret, RandomError> {
    mint("")
}

/// A relay account just minted: its SMTP AUTH username and password (shown once).
pub struct MintedRelayAccount {
    /// `fr_<selector>`.
    pub username: String,
    /// The secret (43 URL-safe characters).
    pub password: String,
    /// Lookup key stored in clear.
    pub selector: String,
    /// SHA-256 of the password.
    pub secret_hash: Vec<u8>,
}

/// Mints a relay account's credentials.
pub fn mint_relay_account() -> Result<MintedRelayAccount, RandomError> {
    let minted = mint("")?;
    let password = minted.text[SELECTOR_CHARS..].to_owned();
    Ok(MintedRelayAccount {
        username: format!("{RELAY_USER_PREFIX}{}", minted.selector),
        password,
        selector: minted.selector,
        secret_hash: minted.secret_hash,
    })
}

/// Splits SMTP AUTH credentials into selector and secret; `None` if they cannot be an
/// account's.
pub fn parse_relay_login<'a>(username: &'a str, password: &'a str) -> Option<PresentedSecret<'a>> {
    split_parts(username.strip_prefix(RELAY_USER_PREFIX)?, password)
}

fn split_parts<'a>(selector: &'a str, secret: &'a str) -> Option<PresentedSecret<'a>> {
    let well_formed = |part: &str, len: usize| {
        part.len() == len
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    (well_formed(selector, SELECTOR_CHARS) && well_formed(secret, SECRET_CHARS))
        .then_some(PresentedSecret { selector, secret })
}

fn split(text: &str) -> Option<PresentedSecret<'_>> {
    if text.len() != SELECTOR_CHARS + SECRET_CHARS || !text.is_char_boundary(SELECTOR_CHARS) {
        return None;
    }
    let (selector, secret) = text.split_at(SELECTOR_CHARS);
    split_parts(selector, secret)
}

/// Splits an `Authorization: Bearer` value into selector and secret; `None` if it cannot be a key.
pub fn parse_api_key(text: &str) -> Option<PresentedSecret<'_>> {
    split(text.strip_prefix(API_KEY_PREFIX)?)
}

/// Splits a link token from a URL; `None` if it cannot be a token.
pub fn parse_link_token(text: &str) -> Option<PresentedSecret<'_>> {
    split(text)
}

fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

impl PresentedSecret<'_> {
    /// True if this secret hashes to `stored_hash`, compared in constant time.
    pub fn matches(&self, stored_hash: &[u8]) -> bool {
        hash_secret(self.secret).ct_eq(stored_hash).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_verify_and_others_do_not() -> Result<(), RandomError> {
        let key = mint_api_key()?;
        let presented = parse_api_key(&key.text).expect("a minted key parses");
        assert_eq!(presented.selector, key.selector);
        assert!(presented.matches(&key.secret_hash));

        let other = mint_api_key()?;
        assert!(!presented.matches(&other.secret_hash));
        Ok(())
    }

    #[test]
    fn malformed_secrets_are_refused() -> Result<(), RandomError> {
        let token = mint_link_token()?;
        assert!(parse_link_token(&token.text).is_some());
        assert!(parse_link_token(&token.text[1..]).is_none());
        assert!(parse_api_key(&token.text).is_none(), "missing prefix");
        assert!(parse_link_token(&format!("{}!", &token.text[1..])).is_none());
        assert!(parse_link_token("").is_none());
        Ok(())
    }

    #[test]
    fn relay_logins_verify_and_others_do_not() -> Result<(), RandomError> {
        let account = mint_relay_account()?;
        let presented =
            parse_relay_login(&account.username, &account.password).expect("a minted login parses");
        assert_eq!(presented.selector, account.selector);
        assert!(presented.matches(&account.secret_hash));
        let other = mint_relay_account()?;
        let wrong = parse_relay_login(&account.username, &other.password).expect("well formed");
        assert!(!wrong.matches(&account.secret_hash));
        assert!(
            parse_relay_login(&account.selector, &account.password).is_none(),
            "no prefix"
        );
        assert!(parse_relay_login(&account.username, &account.password[1..]).is_none());
        Ok(())
    }
}

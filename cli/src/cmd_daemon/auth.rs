//! HTTP basic authentication of the RPC, the web UI and `/metrics` (Transmission's
//! `rpc-authentication-required`, `rpc-username`, `rpc-password`).
//!
//! Basic auth sends the password base64-encoded, that is in clear: it keeps other users
//! of a trusted network out, not an eavesdropper. The daemon says so when it binds a
//! non-loopback address.

use base64::Engine as _;

/// The realm clients show when they ask for a password.
pub(crate) const REALM: &str = "unchoke";

/// The one user the RPC admits. `Debug` leaves the password out, so that no log or panic
/// message shows it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    /// The user name (no `:`, which would end it in a basic-auth header).
    user: String,
    /// The password.
    password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

impl Credentials {
    /// A user and password; neither may be empty, and the user may hold no `:` (RFC 7617:
    /// the first `:` separates them).
    pub(crate) fn new(user: &str, password: &str) -> Result<Credentials, String> {
        if user.is_empty() || password.is_empty() {
            return Err("the RPC user name and password may not be empty".into());
        }
        if user.contains(':') {
            return Err("the RPC user name may not contain `:`".into());
        }
        if user.chars().chain(password.chars()).any(char::is_control) {
            return Err("the RPC user name and password may not contain control characters".into());
        }
        Ok(Credentials {
            user: user.to_string(),
            password: password.to_string(),
        })
    }

    /// `USER:PASSWORD` (split at the first `:`, so the password may hold more), as
    /// `--rpc-auth`, `UNCHOKE_RPC_AUTH` and the config file's `rpc-auth` give it.
    pub(crate) fn parse(text: &str) -> Result<Credentials, String> {
        let Some((user, password)) = text.split_once(':') else {
            return Err("expected USER:PASSWORD".into());
        };
        Credentials::new(user, password)
    }

    /// The user name.
    pub(crate) fn user(&self) -> &str {
        &self.user
    }

    /// Whether an `Authorization` header's value names this user and password. The
    /// comparison takes the same time wherever the first difference is, so the time of a
    /// 401 tells nothing about how close a guess came.
    pub(crate) fn admit(&self, authorization: Option<&str>) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        let value = value.trim();
        // The scheme is case-insensitive (RFC 9110 section 11.1).
        let Some((scheme, token)) = value.split_once(' ') else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        let token = token.trim();
        // Some clients leave the padding out.
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(token));
        let Ok(given) = decoded else {
            return false;
        };
        let expected = format!("{}:{}", self.user, self.password);
        constant_time_eq(&given, expected.as_bytes())
    }

    /// The `WWW-Authenticate` value of a 401.
    pub(crate) fn challenge() -> String {
        format!("Basic realm=\"{REALM}\", charset=\"UTF-8\"")
    }
}

/// Byte equality in time that depends on the lengths only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Every byte of the longer one is looked at; a length difference is a difference.
    let n = a.len().max(b.len());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    // Keeps the compiler from turning the loop into an early exit.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(text: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(text)
        )
    }

    #[test]
    fn parses_user_and_password_at_the_first_colon() {
        let c = Credentials::parse("alice:se:cret").expect("valid");
        assert_eq!(c.user(), "alice");
        assert!(c.admit(Some(&basic("alice:se:cret"))));
        for bad in ["alice", ":pw", "alice:", ""] {
            assert!(Credentials::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn admits_only_the_exact_user_and_password() {
        let c = Credentials::parse("alice:secret").expect("valid");
        assert!(c.admit(Some(&basic("alice:secret"))));
        assert!(c.admit(Some(&format!(
            "bAsIc {}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode("alice:secret")
        ))));
        for bad in [
            None,
            Some(String::new()),
            Some(basic("alice:secre")),
            Some(basic("alice:secrets")),
            Some(basic("bob:secret")),
            Some("Bearer alice:secret".to_string()),
            Some("Basic !!!".to_string()),
        ] {
            assert!(!c.admit(bad.as_deref()), "{bad:?}");
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let c = Credentials::parse("alice:hunter2").expect("valid");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}

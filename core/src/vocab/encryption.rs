//! The session's encryption settings (MSE/PE, see [`crate::mse`]): whether connections are
//! encrypted ([`EncryptionPolicy`]) and which stream methods a handshake may settle on
//! ([`CryptoLevel`]).

use std::str::FromStr;

use crate::mse::{CRYPTO_PLAINTEXT, CRYPTO_RC4, Crypto};

/// Whether the session's peer connections use Message Stream Encryption.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EncryptionPolicy {
    /// Dial encrypted and accept both. A peer whose encrypted handshake fails (it hangs
    /// up, or answers something else) is dialled once more in plaintext, as libtorrent
    /// does; a PEX flag saying it prefers encryption makes it worth an encrypted try again.
    #[default]
    Prefer,
    /// Encrypted connections only: plaintext peers that dial us are refused
    /// ([`super::DisconnectReason::PlaintextRefused`]) and a peer that refuses our
    /// encrypted handshake is not retried in plaintext.
    Require,
    /// Plaintext only: an encrypted handshake from a peer is refused
    /// ([`super::DisconnectReason::EncryptionDisabled`]) and every dial is plaintext.
    Disable,
}

impl EncryptionPolicy {
    /// The policy's name on the command line (`prefer`, `require`, `disable`).
    pub fn name(self) -> &'static str {
        match self {
            EncryptionPolicy::Prefer => "prefer",
            EncryptionPolicy::Require => "require",
            EncryptionPolicy::Disable => "disable",
        }
    }
}

impl FromStr for EncryptionPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "prefer" => Ok(EncryptionPolicy::Prefer),
            "require" => Ok(EncryptionPolicy::Require),
            "disable" => Ok(EncryptionPolicy::Disable),
            other => Err(format!(
                "unknown encryption policy {other:?} (expected prefer, require or disable)"
            )),
        }
    }
}

/// Which stream an encrypted handshake may lead to: RC4 for everything that follows, or
/// plaintext after an obfuscated handshake (cheaper, and enough against shaping that only
/// looks at the handshake). As libtorrent's `allowed_enc_level`, with its default choice:
/// RC4 costs CPU on every byte (RustCrypto's `rc4` runs at about 230 MiB/s on the
/// benchmark machine, `benches/RESULTS.md`), so with both allowed the stream is plaintext
/// whenever the peer allows that too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CryptoLevel {
    /// RC4 only.
    Rc4,
    /// Plaintext after the handshake only.
    Plaintext,
    /// Either: plaintext after the handshake when the peer allows it (we offer both when
    /// dialling, and choose plaintext when a dialler offers both), RC4 for a peer that
    /// insists on it.
    #[default]
    Both,
}

impl CryptoLevel {
    /// The `crypto_provide` bits offered (dialling) or allowed (answering).
    pub fn methods(self) -> u32 {
        match self {
            CryptoLevel::Rc4 => CRYPTO_RC4,
            CryptoLevel::Plaintext => CRYPTO_PLAINTEXT,
            CryptoLevel::Both => CRYPTO_RC4 | CRYPTO_PLAINTEXT,
        }
    }

    /// What a receiving handshake chooses when the dialler offers both methods.
    pub fn preferred(self) -> Crypto {
        match self {
            CryptoLevel::Rc4 => Crypto::Rc4,
            CryptoLevel::Plaintext | CryptoLevel::Both => Crypto::Plaintext,
        }
    }

    /// The level's name on the command line (`rc4`, `plaintext`, `both`).
    pub fn name(self) -> &'static str {
        match self {
            CryptoLevel::Rc4 => "rc4",
            CryptoLevel::Plaintext => "plaintext",
            CryptoLevel::Both => "both",
        }
    }
}

impl FromStr for CryptoLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rc4" => Ok(CryptoLevel::Rc4),
            "plaintext" => Ok(CryptoLevel::Plaintext),
            "both" => Ok(CryptoLevel::Both),
            other => Err(format!(
                "unknown crypto level {other:?} (expected rc4, plaintext or both)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_anything_else_is_refused_by_name() {
        for p in [
            EncryptionPolicy::Prefer,
            EncryptionPolicy::Require,
            EncryptionPolicy::Disable,
        ] {
            assert_eq!(p.name().parse::<EncryptionPolicy>(), Ok(p));
        }
        for l in [CryptoLevel::Rc4, CryptoLevel::Plaintext, CryptoLevel::Both] {
            assert_eq!(l.name().parse::<CryptoLevel>(), Ok(l));
        }
        let e = "forced".parse::<EncryptionPolicy>().unwrap_err();
        assert!(e.contains("\"forced\"") && e.contains("prefer"), "{e}");
        assert!("RC4".parse::<CryptoLevel>().is_err());
        assert_eq!(CryptoLevel::Both.methods(), CRYPTO_RC4 | CRYPTO_PLAINTEXT);
    }
}

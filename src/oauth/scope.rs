//! Scopes (RFC 6749 §3.3).

use std::fmt;

/// The scope an access token needs for the admin API.
pub const ADMIN_SCOPE: &str = "admin";
/// The scope a client needs to call the introspection endpoint.
pub const INTROSPECT_SCOPE: &str = "introspect";
/// The scope an API key needs to manage keys and pairing requests of its account.
pub const KEYS_SCOPE: &str = "keys";
/// Scopes that only OAuth clients may hold: an API key (or a token exchanged for one) must
/// never reach the admin API or introspection.
pub const RESERVED_SCOPES: [&str; 2] = [ADMIN_SCOPE, INTROSPECT_SCOPE];

/// A set of scope tokens in first-seen order, without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope(Vec<String>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScopeSyntaxError(pub String);

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn is_scope_char(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)
}

impl Scope {
    /// The tokens joined by single spaces, as `to_string` gives them, without the
    /// formatter (a token is issued with this on every request).
    pub fn joined(&self) -> String {
        self.0.join(" ")
    }

    /// Parses `scope = scope-token *( SP scope-token )`.
    pub fn parse(text: &str) -> Result<Self, ScopeSyntaxError> {
        if text.is_empty() {
            return Ok(Self::default());
        }
        let mut tokens: Vec<String> = Vec::new();
        for token in text.split(' ') {
            if token.is_empty() {
                return Err(ScopeSyntaxError(
                    "scope tokens must be separated by single spaces".into(),
                ));
            }
            if let Some(bad) = token.bytes().find(|b| !is_scope_char(*b)) {
                return Err(ScopeSyntaxError(format!(
                    "scope token {} contains a character RFC 6749 section 3.3 does not allow (byte 0x{bad:02X})",
                    super::error::echo(token)
                )));
            }
            if !tokens.iter().any(|t| t == token) {
                tokens.push(token.to_owned());
            }
        }
        Ok(Self(tokens))
    }

    /// Parses a list given as separate items (admin API, CLI), each a scope token.
    pub fn from_tokens<I, S>(items: I) -> Result<Self, ScopeSyntaxError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let joined: Vec<String> = items.into_iter().map(|s| s.as_ref().to_owned()).collect();
        Self::parse(&joined.join(" "))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn tokens(&self) -> &[String] {
        &self.0
    }

    pub fn contains(&self, token: &str) -> bool {
        self.0.iter().any(|t| t == token)
    }

    /// True when every token of `self` is in `allowed`.
    pub fn is_subset_of(&self, allowed: &Scope) -> bool {
        self.0.iter().all(|t| allowed.contains(t))
    }

    /// Tokens of `self` that `other` also holds, in `self`'s order.
    pub fn intersection(&self, other: &Scope) -> Scope {
        Scope(
            self.0
                .iter()
                .filter(|t| other.contains(t))
                .cloned()
                .collect(),
        )
    }

    /// Tokens of `self` that `allowed` lacks.
    pub fn not_in<'a>(&'a self, allowed: &'a Scope) -> impl Iterator<Item = &'a str> {
        self.0
            .iter()
            .filter(|t| !allowed.contains(t))
            .map(String::as_str)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, token) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(token)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_space_delimited_tokens_and_drops_duplicates() {
        let scope = Scope::parse("read write read").unwrap();
        assert_eq!(scope.tokens(), ["read", "write"]);
        assert_eq!(scope.to_string(), "read write");
    }

    #[test]
    fn rejects_characters_outside_rfc_6749_grammar() {
        assert!(Scope::parse("read\"").is_err());
        assert!(Scope::parse("re\\ad").is_err());
        assert!(Scope::parse("réad").is_err());
        assert!(Scope::parse("read\twrite").is_err());
        assert!(Scope::parse("read  write").is_err());
        assert!(Scope::parse(" read").is_err());
        assert!(Scope::parse("urn:x:read/all!#$%&'()*+,-.:;<=>?@[]^_`{|}~").is_ok());
    }

    #[test]
    fn subset_checks() {
        let allowed = Scope::parse("a b c").unwrap();
        assert!(Scope::parse("a c").unwrap().is_subset_of(&allowed));
        let asked = Scope::parse("a d").unwrap();
        assert!(!asked.is_subset_of(&allowed));
        assert_eq!(asked.not_in(&allowed).collect::<Vec<_>>(), ["d"]);
        assert!(Scope::default().is_subset_of(&allowed));
    }
}

//! What every issued token must satisfy, from the configuration.

/// Ten years: anything longer is a typo, and it keeps `now + ttl` far from overflow.
pub const MAX_TTL_SECONDS: i64 = 10 * 365 * 24 * 3600;

/// Allowance for resource servers whose clocks run behind ours.
pub const CLOCK_SKEW_SECONDS: i64 = 60;

#[derive(Debug, Clone)]
pub struct TokenPolicy {
    /// `iss` of every token, and the base of the metadata's URLs.
    pub issuer: String,
    /// `aud` for clients that have no allowed audience of their own.
    pub default_audience: String,
    pub default_ttl: i64,
    pub max_ttl: i64,
    /// The audience the admin API requires in a bearer token.
    pub admin_audience: String,
    /// Lifetime of tokens obtained by exchanging an API key (never past the key's expiry).
    pub exchange_ttl: i64,
}

impl TokenPolicy {
    /// A client's lifetime, or the default, never above the maximum.
    pub fn ttl_for(&self, client_ttl: Option<i64>) -> i64 {
        client_ttl
            .unwrap_or(self.default_ttl)
            .clamp(1, self.max_ttl.max(1))
    }

    /// How long after a key stops signing its tokens may still be presented.
    pub fn retired_key_grace(&self) -> i64 {
        self.max_ttl + CLOCK_SKEW_SECONDS
    }
}

//! Checks one access token from the command line, the way a resource server would, without
//! any web framework (so it builds without the `actix` feature).
//!
//! ```sh
//! cargo run -p tollgate-verify --example check_token -- \
//!     http://127.0.0.1:8080 http://127.0.0.1:8080 "$TOKEN" read
//! ```
//!
//! Arguments: issuer, audience, token, then any scopes the token must carry. Prints the
//! verified claims and exits 0, or prints why the token was refused and exits 1.

use std::process::ExitCode;

use tollgate_verify::{Verifier, VerifierConfig};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [issuer, audience, token, scopes @ ..] = args.as_slice() else {
        eprintln!("usage: check_token ISSUER AUDIENCE TOKEN [SCOPE…]");
        return ExitCode::from(2);
    };
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let verified = match Verifier::discover(VerifierConfig::new(issuer, audience)).await {
        Ok(verifier) => verifier.verify_with_scopes(token, &scopes).await,
        Err(err) => Err(err),
    };
    match verified {
        Ok(token) => {
            println!("{:#}", token.claims);
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("refused: {err}");
            ExitCode::FAILURE
        }
    }
}

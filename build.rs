//! Migrations are embedded at compile time: SQL-only edits must trigger a rebuild.
//!
//! PostgreSQL cases of the tests are marked `#[ignore]` (reported as ignored, not as
//! passed) when there is no PostgreSQL to run them on: `tollgate_no_postgres` when
//! TEST_DATABASE_URL is unset (the `both_backends!` cases), `tollgate_no_postgres_bin`
//! when there are no PostgreSQL server binaries (tests that start a cluster of their own).
//! With TOLLGATE_REQUIRE_POSTGRES=1 (CI) neither is set, so those tests run and fail
//! loudly instead of being skipped.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo::rustc-check-cfg=cfg(tollgate_no_postgres)");
    println!("cargo::rustc-check-cfg=cfg(tollgate_no_postgres_bin)");
    println!("cargo:rerun-if-env-changed=TEST_DATABASE_URL");
    println!("cargo:rerun-if-env-changed=TOLLGATE_REQUIRE_POSTGRES");
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    if std::env::var("TOLLGATE_REQUIRE_POSTGRES").as_deref() == Ok("1") {
        return;
    }
    if !set("TEST_DATABASE_URL") {
        println!("cargo:rustc-cfg=tollgate_no_postgres");
    }
    // Where tests/api/outage.rs looks for initdb and pg_ctl (Debian's layout).
    let has_binaries = std::fs::read_dir("/usr/lib/postgresql").is_ok_and(|versions| {
        versions
            .flatten()
            .any(|version| version.path().join("bin/pg_ctl").exists())
    });
    if !has_binaries {
        println!("cargo:rustc-cfg=tollgate_no_postgres_bin");
    }
}

// Migrations are embedded at compile time; SQL-only edits must trigger a rebuild.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}

//! Rebuilds the crate when a migration is added or edited: `sqlx::migrate!` embeds the
//! `migrations` folder when the crate compiles, and cargo does not watch that folder on its
//! own (a new migration would otherwise be missing from an incremental build).

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}

//! Writes the seed corpora: `cargo run --bin seeds -- fuzz/seeds` (from the repository root).
use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "seeds".into()));
    for (target, name, bytes) in suyuan_tests::fuzz::seeds() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(())
}

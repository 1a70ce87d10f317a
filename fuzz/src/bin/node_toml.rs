//! AFL++ target: `suyuan_tests::fuzz::node_toml` on every input.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        suyuan_tests::fuzz::node_toml(data);
    });
}

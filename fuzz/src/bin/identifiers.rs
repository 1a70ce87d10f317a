//! AFL++ target: `suyuan_tests::fuzz::identifiers` on every input.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        suyuan_tests::fuzz::identifiers(data);
    });
}

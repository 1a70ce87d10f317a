//! AFL++ target: `suyuan_tests::fuzz::evidence` on every input.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        suyuan_tests::fuzz::evidence(data);
    });
}

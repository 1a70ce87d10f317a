//! AFL++ target: `suyuan_tests::fuzz::certificate` on every input.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        suyuan_tests::fuzz::certificate(data);
    });
}

//! AFL++ target: `suyuan_tests::fuzz::kept_tags` on every input.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        suyuan_tests::fuzz::kept_tags(data);
    });
}

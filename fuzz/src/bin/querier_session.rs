//! AFL++ target: `suyuan_tests::fuzz::querier_session` on every input.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        let _ = suyuan_tests::fuzz::querier_session(data);
    });
}

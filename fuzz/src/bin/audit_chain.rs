//! AFL++ target: `suyuan_tests::fuzz::audit_chain` on every input.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        suyuan_tests::fuzz::audit_chain(data);
    });
}

//! Recovery (and read-only inspection) of an arbitrary directory image: several segments of
//! arbitrary bytes under an arbitrary policy and record-size limit. Must give a valid log or a
//! typed error, agree with inspection, and be idempotent.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (mem, config) = walden_fuzz::decode_image(data);
    walden_fuzz::recover_and_check(&mem, config);
});

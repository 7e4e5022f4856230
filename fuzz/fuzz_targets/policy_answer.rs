#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    toolgate::fuzz::run("policy_answer", data, &toolgate_fuzz::NativeSdk);
});

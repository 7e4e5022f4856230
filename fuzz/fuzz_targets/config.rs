#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    toolgate::fuzz::run("config", data, &toolgate_fuzz::NativeSdk);
});

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    toolgate::fuzz::run("jsonrpc", data, &toolgate_fuzz::NativeSdk);
});

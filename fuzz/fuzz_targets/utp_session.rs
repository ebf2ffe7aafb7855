#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| unchoke_fuzz::targets::utp_session(data));

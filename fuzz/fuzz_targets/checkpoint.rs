//! The weights and training-state readers on arbitrary bytes: an error or a network whose
//! parameters match its layout, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.safetensors");
    if let Ok(w) = wgtrain::checkpoint::parse_weights(path, data) {
        assert_eq!(w.params.len(), w.mlp.param_count());
    }
    if let Ok(s) = wgtrain::checkpoint::parse_state(path, data) {
        assert_eq!(s.params.len(), s.mlp.param_count());
    }
});

//! The IDX reader on arbitrary bytes (raw or gzip'd): an error or an array, never a
//! panic, and never an allocation larger than the input can justify.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.idx");
    if let Ok(a) = wgtrain::data::idx::parse(path, data, data.len() as u64) {
        assert_eq!(a.data.len(), a.dims.iter().product::<usize>());
    }
});

//! The CSV reader on arbitrary text: an error or a consistent data set, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(d) = wgtrain::data::csv::parse(std::path::Path::new("fuzz.csv"), text) {
        assert_eq!(d.labels.len(), d.rows);
        if let wgtrain::data::FeatureData::F32(v) = &d.features {
            assert_eq!(v.len(), d.rows * d.width);
        }
    }
});

//! `ternd --config FILE`: a `tern_config::DesiredConfig` read from JSON or YAML (as
//! `tern::daemon::parse_config` does: JSON when the text starts with `{`, else YAML), on
//! arbitrary text. Nothing may panic, and whatever parses serialises (as `--print-config`
//! prints it) and reads back to the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tern_config::DesiredConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed: Option<DesiredConfig> = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).ok()
    } else {
        serde_saphyr::from_str(text).ok()
    };
    // Both readers on every input, whatever it starts with.
    let _ = serde_json::from_str::<DesiredConfig>(text);
    let _ = serde_saphyr::from_str::<DesiredConfig>(text);
    if let Some(config) = parsed {
        let json = serde_json::to_string(&config).expect("a parsed config serialises");
        let back: DesiredConfig = serde_json::from_str(&json).expect("printed config reads back");
        assert_eq!(back, config, "printed config reads back differently");
    }
});

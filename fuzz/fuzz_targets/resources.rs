//! The file datastore's resource loader (`controller::datastore::file::parse_files`, YAML
//! and JSON, many documents per file) followed by validation into the model and `compute()`
//! for every node the model holds, on arbitrary file contents.
//!
//! The input is split at NUL bytes into up to four files (a later document replaces an
//! earlier one of the same kind and name across files, as in a folder). Nothing may panic:
//! invalid YAML, wrong types, absurd numbers, CIDRs, selectors, durations and cross-references
//! must all end up as reported problems or compute errors.
#![no_main]
use controller::datastore::file::parse_files;
use controller::model::Model;
use controller::{NodeEnv, compute};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let files: Vec<(String, String)> = data
        .split(|&b| b == 0)
        .take(4)
        .enumerate()
        .map(|(i, chunk)| {
            let ext = if chunk.first() == Some(&b'{') {
                "json"
            } else {
                "yaml"
            };
            (
                format!("{i:02}.{ext}"),
                String::from_utf8_lossy(chunk).into_owned(),
            )
        })
        .collect();
    let (docs, _problems) = parse_files(&files);
    let (model, _more) = Model::from_documents(docs);
    for name in model.nodes.keys().take(3) {
        for router_id in [None, Some("hash".to_string())] {
            let env = NodeEnv {
                node_name: name.clone(),
                router_id,
                ..NodeEnv::default()
            };
            if let Ok(config) = compute(&model, &env) {
                // What `ternd --print-config` does with the result.
                let _ = serde_json::to_string(&config);
            }
        }
    }
});

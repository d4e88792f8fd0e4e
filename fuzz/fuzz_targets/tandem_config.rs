//! Configuration from hostile input: the environment (`KEY=VALUE` lines before the first
//! NUL byte) and the `TANDEM_CONFIG` file's text (the rest). Loading never panics and
//! never fails: whatever is wrong is a `Problem`, and at least one sink is left.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use tandem::config::Config;

fuzz_target!(|data: &[u8]| {
    let (env, file) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let mut vars: HashMap<String, String> = String::from_utf8_lossy(env)
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    vars.insert("TANDEM_CONFIG".into(), "/fuzz/tandem.toml".into());
    let text = String::from_utf8_lossy(file).into_owned();
    let (config, _problems) = Config::load_with(|k| vars.get(k).cloned(), |_| Ok(text.clone()));
    assert!(!config.sinks.is_empty(), "no sink left");
    let _ = config.compile_rules();
});

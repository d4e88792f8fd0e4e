//! The README's configuration table stays true: every setting the extension reads is
//! documented there, with the description `tandem --help` and `check-config` give.

#[test]
fn every_setting_is_in_the_readme_table() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README.md");
    for (name, description) in tandem::config::SETTINGS {
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}` |")))
            .unwrap_or_else(|| panic!("README.md has no row for {name}"));
        let documented = row.replace("&lt;", "<").replace("&gt;", ">").replace("\\|", "|");
        assert!(
            documented.contains(description),
            "README.md describes {name} differently:\n{row}\nexpected: {description}"
        );
    }
}

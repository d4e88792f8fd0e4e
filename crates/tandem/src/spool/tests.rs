//! spool's tests, and the record helper the queue's and the lanes' tests share.

use super::*;
use crate::model::{Level, LogRecord, Source};
use std::fs::OpenOptions;

/// A log record for the tests of the queue, the spool and the lanes.
pub(crate) fn log(n: usize) -> Item {
    Item::Log(LogRecord {
        time_ms: 1_700_000_000_000 + n as u64,
        observed_ms: 1_700_000_000_000 + n as u64,
        source: Source::Function,
        level: Level::Info,
        request_id: Some("r-1".into()),
        message: format!("line {n}"),
        attributes: serde_json::Map::new(),
        trace_id: None,
    })
}

fn message(item: &Item) -> String {
    match item {
        Item::Log(l) => l.message.clone(),
        _ => String::new(),
    }
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tandem-spool-{name}-{}-{}", std::process::id(), fastrand::u64(..)));
    let _ = fs::remove_dir_all(&d);
    d
}

#[test]
fn appends_rotate_and_read_back_in_order() {
    let dir = tempdir("order");
    let mut s = Spool::open(dir.clone(), 1 << 20, 200).unwrap();
    assert!(!s.has_unloaded());
    for n in 0..10 {
        assert!(s.append(&log(n), n as u64).unwrap().written);
    }
    assert!(s.segments.len() > 2, "rotated at 200 bytes: {:?}", s.segments);
    assert_eq!(s.unloaded().0, 10);
    let mut seen = Vec::new();
    while let Some(l) = s.load_front().unwrap() {
        seen.extend(l.items.iter().map(message));
        s.remove(l.id).unwrap();
    }
    assert_eq!(seen, (0..10).map(|n| format!("line {n}")).collect::<Vec<_>>());
    assert_eq!(s.bytes(), 0);
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn a_new_process_takes_over_the_segments_and_skips_a_cut_line() {
    let dir = tempdir("restart");
    {
        let mut s = Spool::open(dir.clone(), 1 << 20, 150).unwrap();
        for n in 0..6 {
            s.append(&log(n), n as u64).unwrap();
        }
    }
    // A kill -9 in the middle of a write leaves a partial last line.
    let last = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).max().unwrap();
    let mut f = OpenOptions::new().append(true).open(&last).unwrap();
    f.write_all(b"{\"type\":\"log\",\"tim").unwrap();
    let mut s = Spool::open(dir.clone(), 1 << 20, 150).unwrap();
    assert!(s.has_unloaded());
    assert!(s.unloaded().0 >= 1, "estimated");
    let mut seen = Vec::new();
    let mut corrupt = 0;
    while let Some(l) = s.load_front().unwrap() {
        seen.extend(l.items.iter().map(message));
        corrupt += l.corrupt;
        s.remove(l.id).unwrap();
    }
    assert_eq!(seen.len(), 6);
    assert_eq!(seen[0], "line 0");
    assert_eq!(corrupt, 1);
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn full_spool_drops_the_oldest_segment_and_counts_it() {
    let dir = tempdir("full");
    let mut line = Vec::new();
    encode_line(&mut line, origin(), 0, &log(0)).unwrap();
    let one = line.len() as u64;
    // Room for 4 records, 2 per segment.
    let mut s = Spool::open(dir.clone(), one * 4, one * 2).unwrap();
    let mut dropped = 0;
    for n in 0..6 {
        let a = s.append(&log(n), n as u64).unwrap();
        assert!(a.written);
        dropped += a.dropped_records;
    }
    assert_eq!(dropped, 2);
    let l = s.load_front().unwrap().unwrap();
    assert_eq!(l.items.iter().map(message).collect::<Vec<_>>(), ["line 2", "line 3"]);
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn an_item_larger_than_the_spool_is_not_written() {
    let dir = tempdir("huge");
    let mut s = Spool::open(dir.clone(), 10, 10).unwrap();
    let a = s.append(&log(0), 0).unwrap();
    assert!(!a.written);
    assert_eq!(s.bytes(), 0);
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn front_segments_come_first() {
    let dir = tempdir("front");
    let mut s = Spool::open(dir.clone(), 1 << 20, 1 << 20).unwrap();
    s.append(&log(5), 5).unwrap();
    let stamp = Stamp { origin: origin().clone(), seq: 1 };
    let front = s.write_front([log(1), log(2)].iter().map(|i| (i, &stamp))).unwrap();
    // The front segment is loaded already (the caller holds it).
    let l = s.load_front().unwrap().unwrap();
    assert_eq!(l.items.iter().map(message).collect::<Vec<_>>(), ["line 5"]);
    // A new process sees both, in order.
    let mut s2 = Spool::open(dir.clone(), 1 << 20, 1 << 20).unwrap();
    let a = s2.load_front().unwrap().unwrap();
    assert_eq!(a.id, front);
    assert_eq!(a.items.iter().map(message).collect::<Vec<_>>(), ["line 1", "line 2"]);
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn segments_are_private_and_foreign_or_linked_ones_are_refused() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempdir("private");
    let mut s = Spool::open(dir.clone(), 1 << 20, 1 << 20).unwrap();
    s.append(&log(0), 0).unwrap();
    let seg = fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
    assert_eq!(fs::metadata(&seg).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    drop(s);
    // A segment planted by another user (only root can make one in a test) and a
    // link to a file elsewhere are neither read nor deleted.
    let elsewhere = dir.with_extension("elsewhere");
    fs::write(&elsewhere, serde_json::to_vec(&log(7)).unwrap()).unwrap();
    let link = segment_path(&dir, BASE_ID - 5);
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let foreign = segment_path(&dir, BASE_ID - 9);
    fs::write(&foreign, serde_json::to_vec(&log(9)).unwrap()).unwrap();
    let as_root = private::uid() == Some(0);
    if as_root {
        std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
    }
    let mut s = Spool::open(dir.clone(), 1 << 20, 1 << 20).unwrap();
    let mut seen = Vec::new();
    while let Some(l) = s.load_front().unwrap() {
        seen.extend(l.items.iter().map(message));
    }
    assert!(!seen.contains(&"line 7".to_owned()), "read through a link: {seen:?}");
    assert_eq!(seen.contains(&"line 9".to_owned()), !as_root, "{seen:?}");
    assert!(seen.contains(&"line 0".to_owned()));
    assert!(fs::symlink_metadata(&link).is_ok());
    if as_root {
        assert_eq!(fs::metadata(&foreign).unwrap().uid(), 65534);
    }
    // A spool directory that is a link is refused.
    let linked = dir.with_extension("linked");
    std::os::unix::fs::symlink(&dir, &linked).unwrap();
    let e = Spool::open(linked.clone(), 1 << 20, 1 << 20).unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");
    let _ = fs::remove_file(linked);
    let _ = fs::remove_file(elsewhere);
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn an_unwritable_directory_is_an_error_not_a_panic() {
    let mut s = Spool::open(PathBuf::from("/proc/tandem-cannot-write-here"), 1 << 20, 1 << 10).unwrap();
    assert!(s.append(&log(0), 0).is_err());
}

#[test]
fn a_record_keeps_its_stamp_across_a_restart() {
    let dir = tempdir("stamp");
    {
        let mut s = Spool::open(dir.clone(), 1 << 20, 1 << 20).unwrap();
        let mut line = Vec::new();
        encode_line(&mut line, "abc.12", 41, &log(1)).unwrap();
        assert!(line.starts_with(b"#abc.12-41 {"));
        s.append_line(&line).unwrap();
        s.append(&log(2), 42).unwrap();
    }
    let mut s = Spool::open(dir.clone(), 1 << 20, 1 << 20).unwrap();
    let l = s.load_front().unwrap().unwrap();
    assert_eq!(l.items.iter().map(message).collect::<Vec<_>>(), ["line 1", "line 2"]);
    assert_eq!(l.stamps[0], Some(Stamp { origin: "abc.12".into(), seq: 41 }));
    assert_eq!(l.stamps[1], Some(Stamp { origin: origin().clone(), seq: 42 }));
    let _ = fs::remove_dir_all(dir);
}

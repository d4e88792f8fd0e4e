//! sandbox::layers: unpacking layers and code (a directory or a `.zip`) into one tree,
//! merged in order as Lambda merges layers onto `/opt`: a later layer's file replaces
//! an earlier one's at the same path, directories are merged. Mode bits are kept (an
//! extension without its run bit is not an extension), symbolic links stay links.

use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Merges `source` (a directory or a `.zip` file) into `dest`.
pub fn merge(source: &Path, dest: &Path) -> io::Result<()> {
    let meta = fs::metadata(source).map_err(|e| annotate(e, source))?;
    fs::create_dir_all(dest)?;
    if meta.is_dir() {
        copy_tree(source, dest)
    } else {
        extract_zip(source, dest)
    }
}

fn annotate(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    for entry in fs::read_dir(from).map_err(|e| annotate(e, from))? {
        let entry = entry?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            replace_non_dir(&dst)?;
            fs::create_dir_all(&dst)?;
            copy_tree(&src, &dst)?;
            let mode = fs::metadata(&src)?.permissions().mode();
            fs::set_permissions(&dst, fs::Permissions::from_mode(mode & 0o7777))?;
        } else if kind.is_symlink() {
            remove_any(&dst)?;
            symlink(fs::read_link(&src)?, &dst)?;
        } else {
            remove_any(&dst)?;
            // fs::copy keeps the permission bits.
            fs::copy(&src, &dst).map_err(|e| annotate(e, &src))?;
        }
    }
    Ok(())
}

/// A file or link where a directory must go is replaced (a later layer wins).
fn replace_non_dir(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if !m.is_dir() => fs::remove_file(path),
        _ => Ok(()),
    }
}

/// Whatever is at `path` is removed, so that a later layer's entry replaces it.
fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The entry's path inside the tree, or `None` when it would leave it (`..`, absolute).
fn inside(name: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

const S_IFMT: u32 = 0o170000;
const S_IFLNK: u32 = 0o120000;

fn extract_zip(zip_path: &Path, dest: &Path) -> io::Result<()> {
    let file = fs::File::open(zip_path).map_err(|e| annotate(e, zip_path))?;
    let mut archive = zip::ZipArchive::new(io::BufReader::new(file))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", zip_path.display())))?;
    let bad =
        |e: zip::result::ZipError| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", zip_path.display()));
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(bad)?;
        let Some(rel) = inside(entry.name()) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: entry {:?} leaves the layer", zip_path.display(), entry.name()),
            ));
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        let target = dest.join(&rel);
        // Zips made on Windows carry no Unix mode: files get 0644, directories 0755,
        // as `unzip` (and Lambda) treat them.
        let mode = entry.unix_mode();
        if entry.is_dir() {
            replace_non_dir(&target)?;
            fs::create_dir_all(&target)?;
            if let Some(m) = mode {
                fs::set_permissions(&target, fs::Permissions::from_mode((m & 0o7777) | 0o700))?;
            }
            continue;
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        remove_any(&target)?;
        if mode.is_some_and(|m| m & S_IFMT == S_IFLNK) {
            let mut link = String::new();
            io::Read::read_to_string(&mut entry, &mut link)?;
            symlink(link, &target)?;
            continue;
        }
        let mut out = fs::File::create(&target)?;
        io::copy(&mut entry, &mut out)?;
        let m = mode.map(|m| m & 0o7777).unwrap_or(0o644);
        fs::set_permissions(&target, fs::Permissions::from_mode(m))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tmp(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("tandem-layers-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        p
    }

    fn zip_of(path: &Path, entries: &[(&str, &[u8], u32)]) {
        let mut w = zip::ZipWriter::new(fs::File::create(path).unwrap());
        for (name, body, mode) in entries {
            let opts = zip::write::SimpleFileOptions::default().unix_permissions(*mode);
            w.start_file(*name, opts).unwrap();
            w.write_all(body).unwrap();
        }
        w.finish().unwrap();
    }

    #[test]
    fn later_layers_overwrite_earlier_files_and_modes_are_kept() {
        let root = tmp("merge");
        let first = root.join("first");
        fs::create_dir_all(first.join("extensions")).unwrap();
        fs::write(first.join("extensions/a"), "first a").unwrap();
        fs::set_permissions(first.join("extensions/a"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(first.join("keep"), "kept").unwrap();
        let second = root.join("second.zip");
        zip_of(&second, &[("extensions/a", b"second a", 0o700), ("bin/tool", b"#!/bin/sh\n", 0o755)]);
        let out = root.join("opt");
        merge(&first, &out).unwrap();
        merge(&second, &out).unwrap();
        assert_eq!(fs::read_to_string(out.join("extensions/a")).unwrap(), "second a");
        assert_eq!(fs::metadata(out.join("extensions/a")).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(fs::metadata(out.join("bin/tool")).unwrap().permissions().mode() & 0o777, 0o755);
        assert_eq!(fs::read_to_string(out.join("keep")).unwrap(), "kept");
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn an_entry_that_leaves_the_layer_is_refused() {
        let root = tmp("escape");
        let z = root.join("evil.zip");
        zip_of(&z, &[("../escaped", b"x", 0o644)]);
        let err = merge(&z, &root.join("opt")).unwrap_err();
        assert!(err.to_string().contains("leaves the layer"), "{err}");
        assert!(!root.join("escaped").exists());
        fs::remove_dir_all(&root).unwrap();
    }
}

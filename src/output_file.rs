//! Files shmwho writes (`record FILE`, `export --textfile DIR`): whole or not at all, and never
//! through a link someone planted in the directory.

use anyhow::Context as _;
use std::io::Write as _;
use std::path::Path;

/// Writes `path` through a temporary file in the same directory and a rename, so readers see
/// the old content or the new, never a part. The temporary has an unpredictable name and is
/// created with O_EXCL (which also refuses a symlink, planted or not), so nothing prepared in
/// the directory can redirect the write; the rename replaces a link at `path`, never follows it.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let name = path
        .file_name()
        .with_context(|| format!("cannot write {}: not a file name", path.display()))?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let result = (|| -> std::io::Result<()> {
        // A dot name that does not end in `.prom`: node_exporter's textfile collector skips it.
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{}.", name.to_string_lossy()))
            .suffix(".tmp")
            .permissions(std::fs::Permissions::from_mode(mode))
            .tempfile_in(dir)?;
        // The umask narrowed the mode at creation; the file is ours, set it as asked.
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        // On failure the temporary is removed when dropped.
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    })();
    result.with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

    #[test]
    fn replaces_a_planted_link_and_leaves_its_target_alone() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "secret\n").unwrap();
        let out = dir.path().join("out.json");
        std::os::unix::fs::symlink(&victim, &out).unwrap();
        write_atomic(&out, b"new\n", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "secret\n");
        let md = std::fs::symlink_metadata(&out).unwrap();
        assert!(md.file_type().is_file());
        assert_eq!(md.permissions().mode() & 0o777, 0o644);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "new\n");
        assert_eq!(md.nlink(), 1);
        // Nothing left behind but the two files.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_file() {
        let e = write_atomic(Path::new("/nonexistent-dir/x"), b"", 0o644).unwrap_err();
        assert!(
            format!("{e:#}").contains("cannot write /nonexistent-dir/x"),
            "{e:#}"
        );
    }
}

//! The `file` datastore: a folder of calicoctl-format YAML (or JSON) files.
//!
//! Every `*.yaml`, `*.yml` and `*.json` file directly in the folder is read, in file-name order;
//! each may hold many documents (`---`). A later document with the same kind and name replaces an
//! earlier one, so `10-base.yaml` followed by `20-change.yaml` behaves like applying both with
//! calicoctl in that order. Hidden files (`.name`, editors' temporaries) are ignored.
//!
//! The folder is watched with `notify`; after a burst of events settles, the whole folder is
//! re-read into memory and a new snapshot is published only if the content changed, so readers
//! never see a half-applied set of files.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use serde_json::Value;

use super::{Datastore, DatastoreError, Snapshot};
use crate::model::{Model, Problem};

/// How long the folder must be quiet before it is re-read.
const SETTLE: Duration = Duration::from_millis(150);

/// A folder of YAML files.
pub struct FileDatastore {
    dir: PathBuf,
    revision: u64,
    last_contents: Option<Vec<(String, String)>>,
    watch: Option<(RecommendedWatcher, Receiver<notify::Result<notify::Event>>)>,
}

impl FileDatastore {
    /// A datastore reading `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> FileDatastore {
        FileDatastore {
            dir: dir.into(),
            revision: 0,
            last_contents: None,
            watch: None,
        }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn io(&self, path: &Path, source: std::io::Error) -> DatastoreError {
        DatastoreError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// Read every file's text, in name order.
    fn read_all(&self) -> Result<Vec<(String, String)>, DatastoreError> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| self.io(&self.dir, e))?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.io(&self.dir, e))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            let wanted = [".yaml", ".yml", ".json"]
                .iter()
                .any(|ext| name.ends_with(ext));
            if name.starts_with('.') || !wanted || !path.is_file() {
                continue;
            }
            files.push(path);
        }
        files.sort();
        let mut out = Vec::with_capacity(files.len());
        for path in files {
            match std::fs::read_to_string(&path) {
                Ok(text) => out.push((path.display().to_string(), text)),
                // Deleted between listing and reading: it is simply gone.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io(&path, e)),
            }
        }
        Ok(out)
    }

    fn build(&mut self, contents: Vec<(String, String)>) -> Snapshot {
        let (docs, mut problems) = parse_files(&contents);
        let (model, more) = Model::from_documents(docs);
        problems.extend(more);
        self.revision += 1;
        self.last_contents = Some(contents);
        Snapshot {
            model,
            problems,
            revision: self.revision,
        }
    }

    fn ensure_watch(&mut self) -> Result<(), DatastoreError> {
        if self.watch.is_some() {
            return Ok(());
        }
        let (tx, rx) = channel();
        let mut w = notify::recommended_watcher(tx).map_err(|e| DatastoreError::Watch {
            path: self.dir.display().to_string(),
            message: e.to_string(),
        })?;
        w.watch(&self.dir, RecursiveMode::NonRecursive)
            .map_err(|e| DatastoreError::Watch {
                path: self.dir.display().to_string(),
                message: e.to_string(),
            })?;
        self.watch = Some((w, rx));
        Ok(())
    }
}

/// Decode YAML/JSON files into documents; a file that does not parse is one problem.
pub fn parse_files(contents: &[(String, String)]) -> (Vec<(String, Value)>, Vec<Problem>) {
    let mut docs = Vec::new();
    let mut problems = Vec::new();
    for (path, text) in contents {
        match serde_saphyr::from_multiple::<Value>(text) {
            Ok(values) => {
                for v in values {
                    if !v.is_null() {
                        docs.push((path.clone(), v));
                    }
                }
            }
            Err(e) => problems.push(Problem {
                source: path.clone(),
                kind: "?".into(),
                name: "?".into(),
                field: String::new(),
                message: format!("not valid YAML: {e}"),
            }),
        }
    }
    (docs, problems)
}

impl Datastore for FileDatastore {
    fn snapshot(&mut self) -> Result<Snapshot, DatastoreError> {
        // Fail with the folder's own error first, then start watching before the read that
        // becomes the snapshot, so no change between the two is missed.
        self.read_all()?;
        self.ensure_watch()?;
        let contents = self.read_all()?;
        Ok(self.build(contents))
    }

    fn next_change(&mut self, timeout: Duration) -> Result<Option<Snapshot>, DatastoreError> {
        self.ensure_watch()?;
        let deadline = Instant::now() + timeout;
        loop {
            let Some((_, rx)) = &self.watch else {
                return Ok(None);
            };
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            match rx.recv_timeout(deadline - now) {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    return Err(DatastoreError::Watch {
                        path: self.dir.display().to_string(),
                        message: e.to_string(),
                    });
                }
                Err(RecvTimeoutError::Timeout) => return Ok(None),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(DatastoreError::Watch {
                        path: self.dir.display().to_string(),
                        message: "watcher stopped".into(),
                    });
                }
            }
            // Let the burst settle (an editor or `cp` produces several events).
            while let Ok(_ev) = rx.recv_timeout(SETTLE) {}
            let contents = self.read_all()?;
            if self.last_contents.as_ref() != Some(&contents) {
                return Ok(Some(self.build(contents)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);
    impl Dir {
        fn new(tag: &str) -> Dir {
            let p = std::env::temp_dir().join(format!("tern-file-ds-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const POOL: &str = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p1\nspec:\n  cidr: 10.0.0.0/16\n";

    #[test]
    fn reads_many_documents_per_file_in_name_order() {
        let d = Dir::new("order");
        std::fs::write(
            d.0.join("10-a.yaml"),
            format!(
                "{POOL}---\nkind: Node\napiVersion: projectcalico.org/v3\nmetadata: {{name: n1}}\n"
            ),
        )
        .unwrap();
        std::fs::write(
            d.0.join("20-b.yaml"),
            POOL.replace("10.0.0.0/16", "10.1.0.0/16"),
        )
        .unwrap();
        std::fs::write(d.0.join("notes.txt"), "ignored").unwrap();
        std::fs::write(d.0.join(".hidden.yaml"), "{{{{ not yaml").unwrap();
        let mut ds = FileDatastore::new(&d.0);
        let s = ds.snapshot().unwrap();
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        assert_eq!(s.model.nodes.len(), 1);
        assert_eq!(s.model.ip_pools["p1"].spec.cidr, "10.1.0.0/16");
    }

    #[test]
    fn bad_files_and_objects_are_problems_not_failures() {
        let d = Dir::new("bad");
        std::fs::write(d.0.join("a.yaml"), "key: [unclosed\n").unwrap();
        std::fs::write(d.0.join("b.yaml"), POOL).unwrap();
        let mut ds = FileDatastore::new(&d.0);
        let s = ds.snapshot().unwrap();
        assert_eq!(s.problems.len(), 1);
        assert!(s.problems[0].source.ends_with("a.yaml"));
        assert_eq!(s.model.ip_pools.len(), 1);
    }

    #[test]
    fn missing_folder_is_an_error() {
        let mut ds = FileDatastore::new("/nonexistent/tern/folder");
        assert!(ds.snapshot().is_err());
    }

    #[test]
    fn changes_produce_a_new_snapshot() {
        let d = Dir::new("watch");
        std::fs::write(d.0.join("a.yaml"), POOL).unwrap();
        let mut ds = FileDatastore::new(&d.0);
        let first = ds.snapshot().unwrap();
        // Nothing changed yet.
        assert!(
            ds.next_change(Duration::from_millis(200))
                .unwrap()
                .is_none()
        );
        // Write the new file atomically (temp + rename), as a deployment tool would.
        let tmp = d.0.join(".b.yaml.tmp");
        std::fs::write(
            &tmp,
            POOL.replace("p1", "p2")
                .replace("10.0.0.0/16", "10.2.0.0/16"),
        )
        .unwrap();
        std::fs::rename(&tmp, d.0.join("b.yaml")).unwrap();
        let next = ds
            .next_change(Duration::from_secs(10))
            .unwrap()
            .expect("change seen");
        assert!(next.revision > first.revision);
        assert_eq!(next.model.ip_pools.len(), 2);
        std::fs::remove_file(d.0.join("a.yaml")).unwrap();
        let next = ds
            .next_change(Duration::from_secs(10))
            .unwrap()
            .expect("removal seen");
        assert_eq!(next.model.ip_pools.keys().collect::<Vec<_>>(), vec!["p2"]);
    }
}

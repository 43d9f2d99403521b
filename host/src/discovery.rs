//! Workflow discovery: what a user's name for workflows means. A path that
//! exists is a workflow file (or, where several workflows are wanted, a
//! directory of `.yaml`/`.yml` files); any other name is looked up among the
//! bundled workflows; a name that is neither is one [`DiscoveryError`] that
//! lists the bundled names.
//!
//! This module owns that rule and nothing after it: it never parses or
//! checks a workflow (that is [`crate::workflow`]'s and [`Host`]'s job), it
//! only says where each workflow's text comes from and hands it to the host.

use std::path::{Path, PathBuf};

use crate::{Host, HostError, LoadedWorkflow, bundled};

/// Where one workflow's text comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkflowSource {
    /// A workflow file; plugin paths in it are relative to its directory.
    File(PathBuf),
    /// A workflow embedded in the binary (`workflows/*.yaml` at build time).
    Bundled {
        /// Its name, as `weft workflows` lists it.
        name: &'static str,
        /// Its YAML text.
        text: &'static str,
    },
}

impl WorkflowSource {
    /// Validates and prepares the workflow on `host`. A bundled workflow's
    /// messages name it `<bundled>/NAME.yaml`.
    ///
    /// # Errors
    ///
    /// [`HostError::ReadWorkflow`] when a file cannot be read, and every
    /// error of [`Host::load_workflow_str`].
    pub fn load(&self, host: &Host) -> Result<LoadedWorkflow, HostError> {
        match self {
            WorkflowSource::File(path) => host.load_workflow_file(path),
            WorkflowSource::Bundled { name, text } => {
                host.load_workflow_str(&format!("<bundled>/{name}.yaml"), text, Path::new("."))
            }
        }
    }
}

impl std::fmt::Display for WorkflowSource {
    /// A file's path, or a bundled workflow's name.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkflowSource::File(path) => write!(f, "{}", path.display()),
            WorkflowSource::Bundled { name, .. } => f.write_str(name),
        }
    }
}

/// A name that does not lead to any workflow.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// Neither a file nor a bundled workflow has this name.
    #[error(
        "workflow file `{}` not found, and no bundled workflow has that name; bundled workflows: {}",
        name.display(),
        bundled.join(", ")
    )]
    NotFound {
        /// The name as given.
        name: PathBuf,
        /// The bundled workflows' names, to choose from.
        bundled: Vec<&'static str>,
    },
    /// A directory of workflows that could not be listed.
    #[error("cannot read workflow directory {}: {source}", path.display())]
    ReadDirectory {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The one workflow `name` means: a bundled workflow's bare name means that
/// workflow, whatever files the current directory holds (a file of that
/// name is `./NAME`, see [`shadowed_file`]); anything else is a path.
///
/// # Errors
///
/// [`DiscoveryError::NotFound`] when it is neither.
pub fn find_workflow(name: &Path) -> Result<WorkflowSource, DiscoveryError> {
    if let Some(source) = name.to_str().and_then(bundled_by_name) {
        return Ok(source);
    }
    if name.exists() {
        return Ok(WorkflowSource::File(name.to_path_buf()));
    }
    Err(DiscoveryError::NotFound { name: name.to_path_buf(), bundled: bundled_names() })
}

/// The file a bare bundled name leaves unused, if one exists here: worth a
/// note, since the user may have meant it.
pub fn shadowed_file(name: &Path) -> Option<PathBuf> {
    let bundled = name.to_str().and_then(bundled_by_name).is_some();
    (bundled && name.exists()).then(|| Path::new(".").join(name))
}

/// The workflows `name` means: every `.yaml` and `.yml` file of a directory
/// (sorted by path; none is an empty list), otherwise what
/// [`find_workflow`] finds.
///
/// # Errors
///
/// [`DiscoveryError::ReadDirectory`] when a directory cannot be listed,
/// [`DiscoveryError::NotFound`] when `name` is neither a path nor a bundled
/// workflow.
pub fn find_workflows(name: &Path) -> Result<Vec<WorkflowSource>, DiscoveryError> {
    if !name.is_dir() {
        return find_workflow(name).map(|source| vec![source]);
    }
    let entries =
        std::fs::read_dir(name).map_err(|source| DiscoveryError::ReadDirectory { path: name.to_path_buf(), source })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml" || ext == "yml"))
        .collect();
    files.sort();
    Ok(files.into_iter().map(WorkflowSource::File).collect())
}

/// Every bundled workflow, in the order `weft workflows` lists them.
pub fn bundled_workflows() -> Vec<WorkflowSource> {
    bundled::bundled_workflows().map(|(name, text)| WorkflowSource::Bundled { name, text }).collect()
}

/// The bundled workflows' names.
pub fn bundled_names() -> Vec<&'static str> {
    bundled::bundled_workflows().map(|(name, _)| name).collect()
}

fn bundled_by_name(wanted: &str) -> Option<WorkflowSource> {
    bundled::bundled_workflows()
        .find(|(name, _)| *name == wanted)
        .map(|(name, text)| WorkflowSource::Bundled { name, text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundled_name_finds_the_bundled_workflow() {
        let Ok(WorkflowSource::Bundled { name, text }) = find_workflow(Path::new("pdf-digest")) else {
            panic!("pdf-digest is bundled");
        };
        assert_eq!(name, "pdf-digest");
        assert!(text.contains("name: pdf-digest"), "{text}");
    }

    #[test]
    fn an_existing_file_is_the_file() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("mine.yaml");
        std::fs::write(&file, "name: mine\n")?;
        assert_eq!(find_workflow(&file)?, WorkflowSource::File(file.clone()));
        assert_eq!(find_workflows(&file)?, vec![WorkflowSource::File(file)]);
        Ok(())
    }

    #[test]
    fn an_unknown_name_is_one_error_listing_the_bundled_workflows() {
        let error = find_workflow(Path::new("nosuch")).err().map(|e| e.to_string()).unwrap_or_default();
        let names = bundled_names();
        assert!(names.contains(&"pdf-digest"), "{names:?}");
        assert_eq!(
            error,
            format!(
                "workflow file `nosuch` not found, and no bundled workflow has that name; bundled workflows: {}",
                names.join(", ")
            )
        );
        assert!(matches!(find_workflows(Path::new("nosuch")), Err(DiscoveryError::NotFound { .. })));
    }

    #[test]
    fn a_directory_holds_its_yaml_files_in_order() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        for file in ["b.yml", "a.yaml", "notes.txt", "c.yaml.bak"] {
            std::fs::write(dir.path().join(file), "")?;
        }
        std::fs::create_dir(dir.path().join("nested.yaml.d"))?;
        let found = find_workflows(dir.path())?;
        let expected: Vec<WorkflowSource> =
            ["a.yaml", "b.yml"].iter().map(|f| WorkflowSource::File(dir.path().join(f))).collect();
        assert_eq!(found, expected);
        Ok(())
    }

    #[test]
    fn an_empty_directory_holds_no_workflows() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        assert!(find_workflows(dir.path())?.is_empty());
        Ok(())
    }

    #[test]
    fn every_bundled_workflow_is_listed_by_name() {
        let names: Vec<&str> = bundled_workflows()
            .iter()
            .filter_map(|source| match source {
                WorkflowSource::Bundled { name, .. } => Some(*name),
                WorkflowSource::File(_) => None,
            })
            .collect();
        assert_eq!(names, bundled_names());
        assert!(!names.is_empty());
        let shown: Vec<String> = bundled_workflows().iter().map(ToString::to_string).collect();
        assert_eq!(shown, names);
    }
}

//! Finding the labelled files of a data folder in the Br35H layout.
//!
//! `DIR/yes/*` are tumour slices and `DIR/no/*` healthy ones (folder names case-insensitive);
//! [`ClassMap`] maps other folder names (say `tumor` / `no_tumor`) to the two labels. Everything
//! else — `pred/`, unrelated folders, hidden files, files directly in `DIR`, subfolders of the
//! class folders — is ignored.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{PreprocessError, Result};

/// The two classes of the study.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Label {
    /// Tumour (Br35H folder `yes/`); the positive class. Serialised as `"yes"`.
    #[serde(rename = "yes")]
    Tumour,
    /// No tumour (Br35H folder `no/`). Serialised as `"no"`.
    #[serde(rename = "no")]
    Healthy,
}

impl Label {
    /// Both labels, tumour first.
    pub const ALL: [Label; 2] = [Label::Tumour, Label::Healthy];

    /// The Br35H folder name: `"yes"` or `"no"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Tumour => "yes",
            Label::Healthy => "no",
        }
    }

    /// True for the tumour class.
    pub fn is_tumour(self) -> bool {
        self == Label::Tumour
    }

    /// Class index for a classifier: tumour = 1, healthy = 0.
    pub fn index(self) -> u32 {
        match self {
            Label::Tumour => 1,
            Label::Healthy => 0,
        }
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Label {
    type Err = PreprocessError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "yes" | "tumour" | "tumor" => Ok(Label::Tumour),
            "no" | "healthy" => Ok(Label::Healthy),
            _ => Err(PreprocessError::param("label", format!("unknown label {s:?}; expected yes or no"))),
        }
    }
}

/// Which folder names hold which class. Matching is case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassMap {
    /// Folder names of tumour slices. Default `["yes"]`.
    pub tumour: Vec<String>,
    /// Folder names of healthy slices. Default `["no"]`.
    pub healthy: Vec<String>,
}

impl Default for ClassMap {
    fn default() -> Self {
        ClassMap { tumour: vec!["yes".into()], healthy: vec!["no".into()] }
    }
}

impl ClassMap {
    /// A map with one folder name per class, e.g. `ClassMap::new("tumor", "no_tumor")`.
    pub fn new(tumour: &str, healthy: &str) -> Self {
        ClassMap { tumour: vec![tumour.into()], healthy: vec![healthy.into()] }
    }

    /// Parses `"tumor=yes,no_tumor=no"`-style text: `folder=label` pairs separated by commas.
    pub fn parse(spec: &str) -> Result<Self> {
        let mut map = ClassMap { tumour: vec![], healthy: vec![] };
        for pair in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (folder, label) = pair.split_once('=').ok_or_else(|| PreprocessError::param("class map", format!("{pair:?} is not folder=label")))?;
            match label.trim().parse::<Label>()? {
                Label::Tumour => map.tumour.push(folder.trim().into()),
                Label::Healthy => map.healthy.push(folder.trim().into()),
            }
        }
        if map.tumour.is_empty() || map.healthy.is_empty() {
            return Err(PreprocessError::param("class map", format!("{spec:?} must name a folder for both yes and no")));
        }
        Ok(map)
    }

    /// The label of a folder name, if it is a class folder.
    pub fn label_of(&self, folder: &str) -> Option<Label> {
        let eq = |names: &[String]| names.iter().any(|n| n.eq_ignore_ascii_case(folder));
        if eq(&self.tumour) {
            Some(Label::Tumour)
        } else if eq(&self.healthy) {
            Some(Label::Healthy)
        } else {
            None
        }
    }

    fn describe(&self) -> String {
        let t: Vec<_> = self.tumour.iter().map(|s| format!("{s}/")).collect();
        let h: Vec<_> = self.healthy.iter().map(|s| format!("{s}/")).collect();
        format!("{} (tumour) and {} (no tumour)", t.join(" or "), h.join(" or "))
    }
}

/// One labelled file of a data folder.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LabelledFile {
    /// Path relative to the data root with `/` separators, e.g. `yes/y0.jpg`.
    pub rel_path: String,
    /// Its class.
    pub label: Label,
}

fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

/// Lists the labelled files under `root`, sorted by relative path.
///
/// # Errors
/// As [`list_labelled_entries`], and [`PreprocessError::UnusableEntry`] for the first entry of
/// a class folder that cannot be an image file.
pub fn list_labelled_files(root: &Path, classes: &ClassMap) -> Result<Vec<LabelledFile>> {
    let (files, unusable) = list_labelled_entries(root, classes)?;
    match unusable.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(files),
    }
}

/// What an entry of a class folder is.
enum Entry {
    /// A regular file (or a link to one): a labelled image candidate.
    File,
    /// A subfolder without an image-like name: class folders are not searched recursively.
    Ignored,
    /// Cannot be an image file, and the user should hear why.
    Unusable(PreprocessError),
}

/// Classifies an entry of a class folder. A name that is not UTF-8, a broken symbolic link or
/// a folder named like an image (`x.jpg/`) used to be dropped without a word: each is now
/// [`Entry::Unusable`] with its reason.
fn classify_entry(entry: &std::fs::DirEntry) -> Entry {
    let path = entry.path();
    let unusable = |reason: &str| Entry::Unusable(PreprocessError::UnusableEntry { path: path.clone(), reason: reason.into() });
    let Some(name) = entry.file_name().to_str().map(str::to_ascii_lowercase) else {
        return unusable("the file name is not valid UTF-8; rename the file");
    };
    match std::fs::metadata(&path) {
        Err(_) if path.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) => unusable("a broken symbolic link (its target does not exist)"),
        Err(e) => Entry::Unusable(PreprocessError::io(&path, e)),
        Ok(m) if m.is_dir() && [".jpg", ".jpeg", ".png"].iter().any(|ext| name.ends_with(ext)) => {
            unusable("a folder named like an image; class folders are not searched recursively")
        }
        Ok(m) if m.is_dir() => Entry::Ignored,
        Ok(m) if !m.is_file() => unusable("not a regular file"),
        Ok(_) => Entry::File,
    }
}

/// Lists the labelled files under `root`, sorted by relative path, and the entries of its
/// class folders that cannot be image files (each an [`PreprocessError::UnusableEntry`] naming
/// the entry and the reason). Hidden entries (`.name`) and subfolders not named like images
/// are ignored.
///
/// # Errors
/// [`PreprocessError::MissingFolder`], [`PreprocessError::NotAFolder`],
/// [`PreprocessError::NoClassFolders`] (neither class present), [`PreprocessError::EmptyFolder`]
/// (a class folder with neither files nor unusable entries), or an I/O error naming the folder.
pub fn list_labelled_entries(root: &Path, classes: &ClassMap) -> Result<(Vec<LabelledFile>, Vec<PreprocessError>)> {
    if !root.exists() {
        return Err(PreprocessError::MissingFolder { path: root.to_path_buf() });
    }
    if !root.is_dir() {
        return Err(PreprocessError::NotAFolder { path: root.to_path_buf() });
    }
    let mut class_dirs: Vec<(String, Label, PathBuf)> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(root).map_err(|e| PreprocessError::io(root, e))? {
        let entry = entry.map_err(|e| PreprocessError::io(root, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_hidden(&name) {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            match classes.label_of(&name) {
                Some(label) => class_dirs.push((name, label, path)),
                None => seen.push(format!("{name}/")),
            }
        } else {
            seen.push(name);
        }
    }
    if class_dirs.is_empty() && seen.is_empty() {
        return Err(PreprocessError::EmptyFolder { path: root.to_path_buf() });
    }
    let has = |l: Label| class_dirs.iter().any(|(_, cl, _)| *cl == l);
    if !has(Label::Tumour) && !has(Label::Healthy) {
        seen.sort();
        let found = if seen.is_empty() { "nothing".to_string() } else { seen.join(", ") };
        return Err(PreprocessError::NoClassFolders { path: root.to_path_buf(), expected: classes.describe(), found });
    }
    let mut files = Vec::new();
    let mut unusable = Vec::new();
    for (name, label, dir) in &class_dirs {
        let before = (files.len(), unusable.len());
        for entry in std::fs::read_dir(dir).map_err(|e| PreprocessError::io(dir, e))? {
            let entry = entry.map_err(|e| PreprocessError::io(dir, e))?;
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if is_hidden(&file_name) {
                continue;
            }
            match classify_entry(&entry) {
                Entry::Unusable(e) => unusable.push(e),
                Entry::Ignored => {}
                Entry::File => files.push(LabelledFile { rel_path: format!("{name}/{file_name}"), label: *label }),
            }
        }
        if (files.len(), unusable.len()) == before {
            return Err(PreprocessError::EmptyFolder { path: dir.clone() });
        }
    }
    files.sort();
    unusable.sort_by_key(|e| e.to_string());
    Ok((files, unusable))
}

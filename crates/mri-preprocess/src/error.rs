//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while loading, preprocessing, grouping or splitting.
///
/// File-level variants name the file and the reason, so a user can find and fix it.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// The data folder does not exist.
    #[error("data folder {path} does not exist")]
    MissingFolder {
        /// The folder asked for.
        path: PathBuf,
    },
    /// The path exists but is not a folder.
    #[error("{path} is not a folder")]
    NotAFolder {
        /// The path asked for.
        path: PathBuf,
    },
    /// The data folder has no class subfolders (e.g. `yes/` and `no/`).
    #[error("{path} has no class subfolders: expected {expected} (case-insensitive); found {found}")]
    NoClassFolders {
        /// The data folder.
        path: PathBuf,
        /// The folder names that would have been accepted.
        expected: String,
        /// What the folder holds instead.
        found: String,
    },
    /// A class folder, or the whole data set, holds no files.
    #[error("{path} holds no image files")]
    EmptyFolder {
        /// The empty folder.
        path: PathBuf,
    },
    /// An entry of a class folder that cannot be an image file (a name that is not UTF-8, a
    /// broken symbolic link, a folder).
    #[error("{path}: {reason}")]
    UnusableEntry {
        /// The entry.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// A file has zero bytes.
    #[error("{path}: empty file (0 bytes)")]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },
    /// A file's content is not in an image format this crate decodes (PNG, JPEG).
    #[error("{path}: not an image (content is not PNG or JPEG, whatever the extension)")]
    NotAnImage {
        /// The file.
        path: PathBuf,
    },
    /// A file looks like an image but does not decode (corrupt or truncated).
    #[error("{path}: corrupt or truncated {format} image: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The format detected from the content.
        format: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// An image is too small to hold a brain slice.
    #[error("{path}: image is {width}×{height} px, smaller than the minimum {min} px")]
    TooSmall {
        /// The file.
        path: PathBuf,
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
        /// The minimum side accepted.
        min: u32,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A JSON or CSV file is malformed.
    #[error("{path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A parameter is out of range (the `check()` of a parameter builder).
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// An error from candle while building tensors.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
}

impl PreprocessError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        PreprocessError::Io { path: path.into(), source }
    }

    pub(crate) fn param(name: &'static str, reason: impl Into<String>) -> Self {
        PreprocessError::InvalidParameter { name, reason: reason.into() }
    }
}

/// The crate's result type.
pub type Result<T, E = PreprocessError> = std::result::Result<T, E>;

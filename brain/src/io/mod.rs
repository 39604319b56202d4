//! Data files of a subject (docs/data.md): `.npy` arrays, NIfTI masks, ROI index sets,
//! z-scoring, and the whole subject folder read into the trainer's datasets.

pub mod nifti;
pub mod npy;
pub mod roi;
pub mod subject;
pub mod zscore;

pub use nifti::{read_volume, write_volume, Volume};
pub use npy::{read_f32, read_info, read_rows, write_f32, Int16Scale, NpyArray, NpyInfo};
pub use roi::{load_rois, RoiCounts, RoiFiles, RoiSets};
pub use subject::{
    inspect_subject, load_subject, write_synthetic, LoadOptions, LoadedSubject, SubjectInfo,
};
pub use zscore::ZScore;

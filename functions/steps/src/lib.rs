//! The pipeline's steps.

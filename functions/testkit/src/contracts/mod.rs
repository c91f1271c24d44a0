//! Contract suites: each runs the MUST sentences of a port's `# Errors` docs against an implementation.

pub mod queue;
pub mod store;
pub mod vectors;

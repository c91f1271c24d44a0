//! Integration tests of the SQLite state store on real files in temporary directories.

mod contract;
mod sqlite;

//! Integration tests of the embedded queue on real SQLite files in temporary directories.

mod contract;
mod sqlite;

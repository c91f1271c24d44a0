//! Integration tests of cadre-eval: suites read from files, repositories built with real git, results
//! files written and torn, and the figures, comparison and report computed from results.

mod compare_report;
mod outcome;
mod prepare;
mod results;
mod run;
mod stats;
mod suite;
mod support;

//! Where a container run's time goes: timestamps taken at the end of each phase of a run, by this
//! process and by the runner, turned into per-phase durations ([`RunPhases`]).
//!
//! Why wall-clock (`SystemTime`) rather than `Instant`: the marks come from two processes (the
//! runner writes its own into the bundle's result file), and an `Instant` cannot be compared
//! across processes. A clock step during a run can only distort that run's breakdown, never the
//! run itself, and negative gaps are shown as zero.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The phases of one container run in order, each with how long it took.
///
/// Phase names, in order: `cache` (lease and open the build cache), `workspace copy`, `spec`
/// (build and write `config.json`), `runner exec` (spawn the runner until its `main` runs),
/// `container create` (libcontainer: cgroups, clone, namespaces, mounts, pivot_root; the init
/// then waits to be started), `loopback up`, `container start` (until the init is told to exec),
/// `command` (exec, the command itself, its exit), `limit counters`, `container delete` (cgroups
/// and state), `reap`, `runner exit` (result file written, runner gone, noticed here),
/// `cleanup` (the run directory and anything left) and `output` (the pipe drained). Phases a run
/// did not reach are absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunPhases {
    phases: Vec<(String, Duration)>,
}

impl RunPhases {
    /// The phases in the order they happened.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Duration)> {
        self.phases.iter().map(|(name, d)| (name.as_str(), *d))
    }

    /// The duration of the phase `name`, if the run reached it.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<Duration> {
        self.phases.iter().find(|(n, _)| n == name).map(|(_, d)| *d)
    }

    /// The sum of all phases: the run's wall time from its start to its last mark.
    #[must_use]
    pub fn total(&self) -> Duration {
        self.phases.iter().map(|(_, d)| *d).sum()
    }
}

/// Timestamps (nanoseconds since the Unix epoch) at the end of named phases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Marks {
    marks: Vec<(String, u128)>,
}

/// Now, in nanoseconds since the Unix epoch (0 if the clock is before it). Only for timing phases
/// across two processes; no task logic reads it, so the `Clock` port has no say.
#[allow(clippy::disallowed_methods)] // The one read of the system clock for phase timings.
pub(crate) fn now_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

impl Marks {
    /// Marks that start counting now.
    pub(crate) fn start() -> Marks {
        Marks { marks: vec![(String::new(), now_ns())] }
    }

    /// Ends the phase `name` now.
    pub(crate) fn mark(&mut self, name: &str) {
        self.marks.push((name.to_owned(), now_ns()));
    }

    /// Adds marks taken elsewhere (the runner's), keeping time order.
    pub(crate) fn extend(&mut self, other: Marks) {
        self.marks.extend(other.marks.into_iter().filter(|(name, _)| !name.is_empty()));
        self.marks.sort_by_key(|(_, at)| *at);
    }

    /// The lines the runner writes into its result file: `mark <ns> <name>`.
    pub(crate) fn render(&self) -> String {
        self.marks
            .iter()
            .filter(|(name, _)| !name.is_empty())
            .map(|(name, at)| format!("mark {at} {name}\n"))
            .collect()
    }

    /// The `mark` lines of a result file (other lines are ignored).
    pub(crate) fn parse(text: &str) -> Marks {
        let marks = text
            .lines()
            .filter_map(|line| {
                let (at, name) = line.strip_prefix("mark ")?.split_once(' ')?;
                Some((name.to_owned(), at.parse().ok()?))
            })
            .collect();
        Marks { marks }
    }

    /// The phases between consecutive marks; the first mark is the start.
    pub(crate) fn phases(&self) -> RunPhases {
        let phases = self
            .marks
            .windows(2)
            .map(|w| {
                let nanos = w[1].1.saturating_sub(w[0].1);
                (w[1].0.clone(), Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)))
            })
            .collect();
        RunPhases { phases }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_marks_round_trip_and_merge_in_time_order() {
        let mut parent = Marks { marks: vec![(String::new(), 100), ("spec".into(), 150)] };
        let runner =
            Marks { marks: vec![("container create".into(), 400), ("command".into(), 900)] };
        let text = format!("exited 0\noom_kills 0\n{}", runner.render());
        assert_eq!(Marks::parse(&text), runner);
        parent.extend(Marks::parse(&text));
        parent.marks.push(("cleanup".into(), 1000));
        let phases = parent.phases();
        let got: Vec<(&str, u64)> = phases.iter().map(|(n, d)| (n, d.as_nanos() as u64)).collect();
        assert_eq!(
            got,
            [("spec", 50), ("container create", 250), ("command", 500), ("cleanup", 100)]
        );
        assert_eq!(phases.total(), Duration::from_nanos(900));
        assert_eq!(phases.get("command"), Some(Duration::from_nanos(500)));
        assert_eq!(phases.get("reap"), None);
    }
}

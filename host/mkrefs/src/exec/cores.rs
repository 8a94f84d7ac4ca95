//! How the executor shares the machine between jobs: which ready job starts first, and how many
//! threads it gets.
//!
//! - Jobs that others wait on start first: the one with the most jobs waiting on it, directly
//!   or not (a superbias that every calibration reads, then the calibrations that the dark and
//!   bpm jobs read), so the run's critical path is not held up by a job nothing waits for (a
//!   readnoise from uncal files), which fills the gaps instead.
//! - Unless `--threads` fixes it, a job gets the cores nobody uses, shared among the jobs
//!   ready to start: two jobs at a time on two cores get one thread each, but the last job
//!   of a run (or one that runs alone because the rest wait on it) gets both.
//! - A job starts only while the estimated peak memory of the running jobs and its own fits in
//!   the memory the system had available when the run started (80 % of `MemAvailable`), or
//!   when nothing else runs: many calibrations of full-frame ramps at once on a node with many
//!   cores and little memory would otherwise be killed by the kernel. The estimates
//!   ([`job_memory`]) are generous, from the measured peaks of full-frame jobs.

/// For each job, how many jobs wait on it directly or through others. `after[i]` lists the
/// jobs job `i` waits on.
pub fn waiting_on(after: &[Vec<usize>]) -> Vec<usize> {
    let n = after.len();
    (0..n)
        .map(|root| {
            let mut reached = vec![false; n];
            let mut stack = vec![root];
            let mut count = 0;
            while let Some(j) = stack.pop() {
                for (i, deps) in after.iter().enumerate() {
                    if !reached[i] && i != root && deps.contains(&j) {
                        reached[i] = true;
                        count += 1;
                        stack.push(i);
                    }
                }
            }
            count
        })
        .collect()
}

/// The threads of the run and how they are handed out.
#[derive(Clone, Copy, Debug)]
pub struct Cores {
    /// Threads of all running jobs together (the cores, or `--jobs` x `--threads`).
    pub total: usize,
    /// Threads of every job (`--threads`, or the cores shared by `--jobs`).
    pub per_job: usize,
    /// Whether a job may get more than `per_job` when cores are free (`--threads` not given).
    pub adaptive: bool,
}

impl Cores {
    /// The threads of a job starting now, while `busy` threads run and `ready` jobs (this one
    /// included) could start.
    pub fn threads_for(&self, busy: usize, ready: usize) -> usize {
        if !self.adaptive {
            return self.per_job.max(1);
        }
        let free = self.total.saturating_sub(busy);
        (free / ready.max(1)).max(self.per_job).max(1)
    }
}

/// The estimated peak memory of a job, in bytes. A native calibration holds the ramp as f32
/// values and byte flags, 2.5 times the 16-bit raw file, and peaks at about 1.8 times that (a
/// full-frame 2 x 10 group dark: 170 MB raw, 0.76 GB peak; 1.06 GB when its fitopt is made
/// whole), so 6.5 times the raw file; the jwst pipeline's Python process peaked at 5 GB for that
/// dark, 30 times. A generator job is bounded by its own memory budget (the bundled ones peak
/// under 0.6 GB at full frame); a third party's is not known, so 1 GB is assumed.
pub fn job_memory(calibration_input_bytes: Option<u64>, jwst: bool) -> u64 {
    match calibration_input_bytes {
        Some(raw) if jwst => raw.saturating_mul(30),
        Some(raw) => raw.saturating_mul(13) / 2,
        None => 1 << 30,
    }
}

/// The memory jobs may use together: 80 % of what the system has available now (`MemAvailable`
/// of `/proc/meminfo`); `None` (no limit) where that is not known.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024 / 5 * 4)
}

/// Whether a job needing `need` bytes may start while `in_use` bytes are taken by `running`
/// jobs, within `budget` (`None`: no limit). A job always starts when nothing else runs.
pub fn fits_in_memory(budget: Option<u64>, in_use: u64, need: u64, running: usize) -> bool {
    running == 0 || budget.is_none_or(|b| in_use.saturating_add(need) <= b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_others_wait_on_come_first() {
        // 0: superbias; 1, 2: calibrations reading it; 3: dark reading both; 4: readnoise.
        let after = vec![vec![], vec![0], vec![0], vec![1, 2], vec![]];
        assert_eq!(waiting_on(&after), [3, 1, 1, 0, 0]);
    }

    #[test]
    fn jobs_wait_for_memory_but_never_forever() {
        let gb = 1u64 << 30;
        assert!(fits_in_memory(Some(4 * gb), 2 * gb, 2 * gb, 1));
        assert!(!fits_in_memory(Some(4 * gb), 3 * gb, 2 * gb, 1));
        // Alone, a job runs whatever its estimate.
        assert!(fits_in_memory(Some(gb), 0, 8 * gb, 0));
        assert!(fits_in_memory(None, 100 * gb, 100 * gb, 5));
        let raw = 170_000_000;
        assert!((1_000_000_000..1_200_000_000).contains(&job_memory(Some(raw), false)));
        assert_eq!(job_memory(None, false), gb);
        assert!(available_memory().is_none_or(|m| m > 0));
    }

    #[test]
    fn free_cores_go_to_the_jobs_ready_to_start() {
        let c = Cores {
            total: 2,
            per_job: 1,
            adaptive: true,
        };
        assert_eq!(c.threads_for(0, 1), 2);
        assert_eq!(c.threads_for(0, 2), 1);
        assert_eq!(c.threads_for(1, 1), 1);
        assert_eq!(c.threads_for(2, 1), 1);
        let fixed = Cores {
            adaptive: false,
            ..c
        };
        assert_eq!(fixed.threads_for(0, 1), 1);
    }
}

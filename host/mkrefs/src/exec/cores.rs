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

//! Row blocks within a memory budget, thread pools, and large buffers on huge pages.
//!
//! Generators process images in bands of whole rows so that memory stays bounded whatever the
//! number of input files: the caller states how many bytes one row of its working set
//! takes (all files, groups and scratch for that row) and gets a number of rows per block.

/// Rows per block so that `rows * bytes_per_row <= budget_bytes`, but at least 1 (a single row
/// is processed even if it alone exceeds the budget) and at most `ny` (also at least 1 when `ny == 0`).
pub fn rows_per_block(bytes_per_row: usize, budget_bytes: usize, ny: usize) -> usize {
    let rows = budget_bytes / bytes_per_row.max(1);
    rows.min(ny).max(1)
}

/// Half-open row ranges `(start, end)` covering `0..ny` in blocks of `rows` (the last may be
/// shorter). `rows == 0` is treated as 1. Empty when `ny == 0`.
pub fn row_blocks(ny: usize, rows: usize) -> impl Iterator<Item = (usize, usize)> {
    let rows = rows.max(1);
    (0..ny)
        .step_by(rows)
        .map(move |start| (start, (start + rows).min(ny)))
}

/// A rayon pool with `threads` workers; 0 means one per available core. Threads are named
/// `mkrefs-worker-N` so they are recognisable in a debugger or `top -H`.
pub fn thread_pool(threads: usize) -> Result<rayon::ThreadPool, String> {
    let n = if threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        threads
    };
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("mkrefs-worker-{i}"))
        .build()
        .map_err(|e| format!("cannot start a pool of {n} threads: {e}"))
}

/// Asks Linux to back the memory of `v` (its whole capacity) with transparent huge pages, where
/// the system leaves that to the program (`madvise` mode, the default). Call it before the memory
/// is first written: the full-frame maps of a job (tens of MB each) are otherwise faulted in 4 kB
/// at a time, some 50,000 faults and a tenth of a superbias run's CPU. Only a hint: contents and
/// results are unchanged, and failure is ignored.
pub fn huge_pages<T>(v: &Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        const MADV_HUGEPAGE: std::ffi::c_int = 14;
        const HUGE: usize = 2 << 20;
        unsafe extern "C" {
            fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: std::ffi::c_int) -> i32;
        }
        let start = v.as_ptr() as usize;
        let end = start + v.capacity() * std::mem::size_of::<T>();
        let (a, b) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
        if b > a {
            // SAFETY: [a, b) lies inside the allocation of `v`; the advice changes no contents.
            unsafe { madvise(a as *mut std::ffi::c_void, b - a, MADV_HUGEPAGE) };
        }
    }
}

/// `vec![T::default(); n]` on huge pages ([`huge_pages`]), for large buffers of numbers: a
/// fresh zeroed allocation is not written until used, so the advice comes first.
pub fn zeroed_vec<T: Clone + Default>(n: usize) -> Vec<T> {
    let v = vec![T::default(); n];
    huge_pages(&v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_within_budget_and_bounds() {
        assert_eq!(rows_per_block(1000, 10_000, 2048), 10);
        assert_eq!(rows_per_block(1000, 10_999, 2048), 10);
        assert_eq!(rows_per_block(1000, 500, 2048), 1);
        assert_eq!(rows_per_block(1000, usize::MAX, 2048), 2048);
        assert_eq!(rows_per_block(0, 10, 7), 7);
        assert_eq!(rows_per_block(10, 100, 0), 1);
    }

    #[test]
    fn blocks_cover_all_rows_once() {
        let b: Vec<_> = row_blocks(10, 4).collect();
        assert_eq!(b, [(0, 4), (4, 8), (8, 10)]);
        assert_eq!(row_blocks(8, 4).collect::<Vec<_>>(), [(0, 4), (4, 8)]);
        assert_eq!(row_blocks(3, 0).count(), 3);
        assert_eq!(row_blocks(0, 5).count(), 0);
        assert_eq!(row_blocks(5, 100).collect::<Vec<_>>(), [(0, 5)]);
    }

    #[test]
    fn pools() {
        let p = thread_pool(2).unwrap();
        assert_eq!(p.current_num_threads(), 2);
        let sum: u64 = p.install(|| {
            use rayon::prelude::*;
            (1..=100u64).into_par_iter().sum()
        });
        assert_eq!(sum, 5050);
        let v: Vec<f64> = zeroed_vec(3 << 20);
        assert!(v.len() == 3 << 20 && v.iter().all(|&x| x == 0.0));
        let all = thread_pool(0).unwrap();
        assert_eq!(
            all.current_num_threads(),
            std::thread::available_parallelism().unwrap().get()
        );
    }
}

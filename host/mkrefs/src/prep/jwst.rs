//! The jwst pipeline as a calibration backend: one `strun calwebb_detector1` command per
//! calibration job, built as an argument vector (no shell, so paths and values with spaces are
//! safe), with upstream's bugs fixed (UPSTREAM.md, "Running the pipeline"):
//!
//! - every step of jwst's calwebb_detector1 that the job does not run is skipped by exact name
//!   (upstream tested substrings and passed NIRCam's step list to every instrument), including
//!   the steps mkrefs has no name for ([`JWST_ONLY_STEPS`]): stpipe prefetches the reference
//!   files of every step not skipped, whatever the instrument, and the pipeline would otherwise
//!   run e.g. gain_scale or MIRI's reset;
//! - the final output and every saved intermediate product get the names mkrefs looks for,
//!   and `rate` is written as the pipeline's `ramp_fit` everywhere;
//! - `fitopt` asks ramp_fit for its optional output (`save_opt`);
//! - reference files from `reffile4ssb` become `--steps.<step>.override_<reftype>=<file>`;
//! - no hard-coded jump threshold or NIRCam-only refpix option.
//!
//! The pipeline logs to stderr; the exit status alone decides success.
//!
//! Without network (no CRDS server), every strun process gets [`offline_environment`]: see its
//! documentation and the README section "The jwst backend without network".

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::prep::steps::{Instrument, SaveProduct, Step};

/// The steps of jwst's `calwebb_detector1` (jwst 3.0) that mkrefs' step vocabulary does not
/// name, so that no job ever asks for them: they are always skipped. Several are skipped by
/// default anyway (emicorr, charge_migration, picture_frame, clean_flicker_noise), but CRDS
/// parameter files may turn them on. `reset` is MIRI's; `gain_scale` rescales rates of
/// exposures taken with a non-standard gain setting by the GAIN file's GAINFACT: reference-file
/// work wants slopes in the detector's own DN, as the native engine makes them.
pub const JWST_ONLY_STEPS: [&str; 6] = [
    "emicorr",
    "reset",
    "charge_migration",
    "picture_frame",
    "clean_flicker_noise",
    "gain_scale",
];

/// The reftype each step reads (the ones `override_<reftype>` applies to).
pub fn step_reftypes(step: Step) -> &'static [&'static str] {
    match step {
        Step::DqInit => &["mask"],
        Step::Saturation => &["saturation"],
        Step::Superbias => &["superbias"],
        Step::Refpix => &[],
        Step::Linearity => &["linearity"],
        Step::DarkCurrent => &["dark"],
        Step::Jump => &["gain", "readnoise"],
        Step::Rate => &["gain", "readnoise"],
        Step::Ipc => &["ipc"],
        Step::Persistence => &["trapdensity", "trappars", "persat"],
        Step::Rscd => &["rscd"],
        Step::Emicorr => &["emicorr"],
        Step::Reset => &["reset"],
        Step::FirstFrame | Step::LastFrame | Step::GroupScale => &[],
    }
}

/// One calibration job for the jwst backend.
#[derive(Clone, Debug, PartialEq)]
pub struct StrunJob {
    pub instrument: Instrument,
    /// The file to calibrate (raw, or a product that already has some steps).
    pub input: PathBuf,
    /// The steps to run now, in pipeline order (steps the input already has are not repeated).
    pub run: Vec<Step>,
    /// Where the pipeline writes, and the name (without `.fits`) of the final product.
    pub output_dir: PathBuf,
    pub final_name: String,
    /// Intermediate products to keep: (product, name without `.fits`).
    pub save: Vec<(SaveProduct, String)>,
    /// Reference files: (step, reftype, file).
    pub overrides: Vec<(Step, String, PathBuf)>,
}

/// Reference files a jwst step asks for (so stpipe prefetches them from CRDS) but can do
/// without: the superbias of the saturation step (used only for frame-averaged groups), and the
/// refpix step's IRS2 `refpix` and optional `sirskernel` files. [`strun_argv`] passes the file
/// given for that reftype (for any step) when there is one, else `N/A`, which the step accepts
/// and which keeps stpipe from asking CRDS. (For a NIRSpec IRS2 exposure without a `refpix`
/// file, jwst then records refpix SKIPPED, which the product's state shows.)
pub fn optional_step_reftypes(step: Step) -> &'static [&'static str] {
    match step {
        Step::Saturation => &["superbias"],
        Step::Refpix => &["refpix", "sirskernel"],
        _ => &[],
    }
}

/// The stem of every file strun writes in [`strun_work_dir`]. It ends in no suffix stpipe
/// knows, so stpipe's names are `mkrefs_<suffix>.fits` (see [`strun_outputs`]).
pub const WORK_STEM: &str = "mkrefs";

/// Where strun writes a job's products: a directory beside the destination (so the products
/// can be renamed into place), named after the final product. stpipe names its products
/// itself (`<stem>[_<index>]_<suffix>.fits`, stripping and replacing known suffixes, numbering
/// the two outputs of ramp_fit), so names cannot be passed through; and a failed run must leave
/// nothing under a final name. [`collect_strun_outputs`] moves the requested products out.
pub fn strun_work_dir(job: &StrunJob) -> PathBuf {
    job.output_dir.join(format!(".strun-{}", job.final_name))
}

/// (file strun writes, destination) of the final product and every requested product.
/// stpipe's names (jwst 3.0): the pipeline's result `mkrefs_rate.fits` after ramp fitting,
/// else `mkrefs_ramp.fits`; `mkrefs_rateints.fits` (written whenever ramp_fit runs);
/// `mkrefs_fitopt.fits` (ramp_fit's `save_opt`); `mkrefs_<step>.fits` for a step's
/// `save_results`.
pub fn strun_outputs(job: &StrunJob) -> Vec<(PathBuf, PathBuf)> {
    let work = strun_work_dir(job);
    let made = |suffix: &str| work.join(format!("{WORK_STEM}_{suffix}.fits"));
    let dest = |name: &str| job.output_dir.join(format!("{name}.fits"));
    let last = job.run.last().copied();
    let final_suffix = if last == Some(Step::Rate) {
        "rate"
    } else {
        "ramp"
    };
    let mut out = vec![(made(final_suffix), dest(&job.final_name))];
    for (product, name) in &job.save {
        let from = match product {
            SaveProduct::Step(s) if Some(*s) == last => continue,
            SaveProduct::Step(s) => made(s.pipeline_name()),
            SaveProduct::Rateints => made("rateints"),
            SaveProduct::Fitopt => made("fitopt"),
        };
        out.push((from, dest(name)));
    }
    out
}

/// After strun succeeded: renames each product of [`strun_outputs`] to its destination and
/// removes the work directory (with what nobody asked for, e.g. rateints when only rate was
/// wanted). Returns the destinations. A product strun did not write is an error naming it and
/// the job's input; then nothing is moved.
pub fn collect_strun_outputs(job: &StrunJob) -> Result<Vec<PathBuf>, String> {
    let outputs = strun_outputs(job);
    if let Some((from, to)) = outputs.iter().find(|(from, _)| !from.is_file()) {
        return Err(format!(
            "strun on {} exited successfully but did not write {} (to become {}); see the \
             job's log for what the pipeline did",
            job.input.display(),
            from.display(),
            to.display()
        ));
    }
    let mut moved = Vec::with_capacity(outputs.len());
    for (from, to) in outputs {
        std::fs::rename(&from, &to)
            .map_err(|e| format!("cannot move {} to {}: {e}", from.display(), to.display()))?;
        moved.push(to);
    }
    let work = strun_work_dir(job);
    std::fs::remove_dir_all(&work).map_err(|e| {
        format!(
            "cannot remove strun's work directory {}: {e}",
            work.display()
        )
    })?;
    Ok(moved)
}

fn product_label(p: SaveProduct) -> &'static str {
    match p {
        SaveProduct::Step(s) => s.name(),
        SaveProduct::Rateints => "rateints",
        SaveProduct::Fitopt => "fitopt",
    }
}

/// The `strun` argument vector (program name first). strun writes into [`strun_work_dir`]
/// (create it first); after it succeeds, [`collect_strun_outputs`] moves the products to their
/// names in `output_dir`.
pub fn strun_argv(job: &StrunJob) -> Result<Vec<String>, String> {
    let Some(&last) = job.run.last() else {
        return Err(format!(
            "nothing to run for {}: it is already at the requested state",
            job.input.display()
        ));
    };
    let mut argv = vec![
        "strun".to_string(),
        "calwebb_detector1".to_string(),
        path_text(&job.input),
    ];
    if let Some(&s) = job
        .run
        .iter()
        .find(|s| job.instrument.position(**s).is_none())
    {
        return Err(format!(
            "cannot calibrate {} with the {} step: it is not a {} pipeline step",
            job.input.display(),
            s.name(),
            job.instrument.name()
        ));
    }
    for step in Step::ALL {
        if !job.run.contains(&step) {
            argv.push(format!("--steps.{}.skip=True", step.pipeline_name()));
        }
    }
    for name in JWST_ONLY_STEPS {
        argv.push(format!("--steps.{name}.skip=True"));
    }
    argv.push(format!("--output_dir={}", path_text(&strun_work_dir(job))));
    argv.push(format!("--output_file={WORK_STEM}"));
    for (product, _) in &job.save {
        let step = product.producing_step();
        if !job.run.contains(&step) {
            return Err(format!(
                "cannot save the {} product of {}: the {} step does not run in this job",
                product_label(*product),
                job.input.display(),
                step.name()
            ));
        }
        match product {
            // The pipeline saves the last step's product itself (the final product), and
            // rateints whenever ramp_fit runs.
            SaveProduct::Step(s) if *s == last => {}
            SaveProduct::Rateints => {}
            SaveProduct::Step(s) => {
                argv.push(format!("--steps.{}.save_results=True", s.pipeline_name()))
            }
            SaveProduct::Fitopt => argv.push("--steps.ramp_fit.save_opt=True".to_string()),
        }
    }
    for (step, reftype, file) in &job.overrides {
        if !job.run.contains(step) {
            continue; // a step that does not run reads no reference file
        }
        argv.push(format!(
            "--steps.{}.override_{}={}",
            step.pipeline_name(),
            reftype.to_ascii_lowercase(),
            path_text(file)
        ));
    }
    for &step in &job.run {
        for &reftype in optional_step_reftypes(step) {
            let same = |(_, r, _): &&(Step, String, PathBuf)| r.eq_ignore_ascii_case(reftype);
            if job
                .overrides
                .iter()
                .filter(same)
                .any(|(s, _, _)| *s == step)
            {
                continue; // passed above
            }
            let file = match job.overrides.iter().find(same) {
                Some((_, _, f)) => path_text(f),
                None => "N/A".to_string(),
            };
            argv.push(format!(
                "--steps.{}.override_{reftype}={file}",
                step.pipeline_name()
            ));
        }
    }
    Ok(argv)
}

/// The CRDS context name recorded (CRDS_CTX) in products made offline. It ends in `.pmap`, as
/// CRDS requires of a context name, and names no real context: no CRDS rule chose any file.
pub const OFFLINE_CONTEXT: &str = "jwst_0000.pmap";

/// The CRDS server URL that puts the crds client in its "serverless" mode: any URL containing
/// `serverless` makes it raise at once instead of opening a connection (the value is the one
/// the crds package's own `crds_jwst_serverless_pipeline_env.csh` sets for the STScI pipeline).
pub const SERVERLESS_URL: &str = "https://jwst-serverless-mode.stsci.edu";

/// The environment under which `strun` (or any jwst step) runs with no CRDS server and no
/// CRDS cache, every reference file being given as an `override_<reftype>`. Creates the
/// minimal CRDS cache configuration it points to, `<scratch>/crds/config/jwst/server_config`
/// (written atomically; calling it again for the same scratch directory is harmless), and
/// returns the variables to set on the child process.
///
/// Why each is needed (jwst 3.0.0, stpipe 1.1.0, crds 14.0.3):
///
/// - `STPIPE_DISABLE_CRDS_STEPPARS=True`: otherwise strun asks CRDS for the step-parameter
///   reference file (`pars-detector1pipeline`) before anything runs.
/// - `CRDS_SERVER_URL` = [`SERVERLESS_URL`]: every CRDS call fails at once instead of waiting
///   for a network that is not there.
/// - `CRDS_PATH` = `<scratch>/crds` with `config/jwst/server_config`: after each step that used
///   a reference file, stpipe records the CRDS context in the product
///   (`crds_client.get_context_used`). With no server, crds reads the last server status from
///   that cache file; without it every step fails ("CRDS server connection and cache load
///   FAILED") although all its reference files are overrides. The file holds the three keys
///   crds reads: `observatory`, `operational_context` and `last_synced`.
/// - `CRDS_CONTEXT` = [`OFFLINE_CONTEXT`]: the context name recorded; without it crds also
///   asks the (absent) server for the installed jwst's build context and logs that it fell
///   back.
/// - `CRDS_OBSERVATORY=jwst`, `CRDS_MODE=local`, `CRDS_READONLY_CACHE=1`: no guessing of the
///   project, no remote best-reference computation, and nothing written into the cache.
///
/// A reference file that is *not* given as an override then fails the step with a CRDS error
/// naming the context (its rules are not in the cache), which is what mkrefs wants: the plan
/// must pass every reference file a step reads. A user who has a real, synced CRDS cache should
/// not use this environment, but set `CRDS_PATH` to that cache instead.
pub fn offline_environment(scratch: &Path) -> std::io::Result<Vec<(OsString, OsString)>> {
    let cache = scratch.join("crds");
    let config_dir = cache.join("config").join("jwst");
    std::fs::create_dir_all(&config_dir).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "cannot create the offline CRDS cache directory {}: {e}",
                config_dir.display()
            ),
        )
    })?;
    let config = config_dir.join("server_config");
    let text = format!(
        "{{'observatory': 'jwst', 'operational_context': '{OFFLINE_CONTEXT}', \
         'last_synced': 'never: offline configuration written by mkrefs', \
         'bad_files_list': [], 'force_remote_mode': False}}\n"
    );
    // Unique per process and call: executor threads may prepare jobs at the same time.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = config_dir.join(format!(".server_config.{}.{call}.tmp", std::process::id()));
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, &config))
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot write the offline CRDS configuration {}: {e}",
                    config.display()
                ),
            )
        })?;
    let pairs: [(&str, OsString); 7] = [
        ("STPIPE_DISABLE_CRDS_STEPPARS", "True".into()),
        ("CRDS_SERVER_URL", SERVERLESS_URL.into()),
        ("CRDS_PATH", cache.into_os_string()),
        ("CRDS_CONTEXT", OFFLINE_CONTEXT.into()),
        ("CRDS_OBSERVATORY", "jwst".into()),
        ("CRDS_MODE", "local".into()),
        ("CRDS_READONLY_CACHE", "1".into()),
    ];
    Ok(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

fn path_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Step::*;

    fn job(run: Vec<Step>) -> StrunJob {
        StrunJob {
            instrument: Instrument::NirCam,
            input: PathBuf::from("/data/my dark_uncal.fits"),
            run,
            output_dir: PathBuf::from("/out/ssb"),
            final_name: "my dark_dq_init_saturation_superbias_refpix_linearity_jump".into(),
            save: Vec::new(),
            overrides: Vec::new(),
        }
    }

    #[test]
    fn skips_the_instruments_other_steps_by_exact_name() {
        let argv = strun_argv(&job(vec![
            DqInit, Saturation, Superbias, Refpix, Linearity, Jump,
        ]))
        .unwrap();
        assert_eq!(
            &argv[..3],
            ["strun", "calwebb_detector1", "/data/my dark_uncal.fits"]
        );
        for skipped in [
            "group_scale",
            "ipc",
            "persistence",
            "dark_current",
            "ramp_fit",
        ] {
            assert!(
                argv.contains(&format!("--steps.{skipped}.skip=True")),
                "{argv:?}"
            );
        }
        for run in [
            "dq_init",
            "saturation",
            "superbias",
            "refpix",
            "linearity",
            "jump",
        ] {
            assert!(
                !argv.contains(&format!("--steps.{run}.skip=True")),
                "{argv:?}"
            );
        }
        // Steps mkrefs has no name for are skipped too (stpipe would prefetch their files).
        for other in JWST_ONLY_STEPS {
            assert!(
                argv.contains(&format!("--steps.{other}.skip=True")),
                "{argv:?}"
            );
        }
        // strun writes into the work directory; the pipeline saves the final product itself.
        assert!(argv.contains(&"--output_dir=/out/ssb/.strun-my dark_dq_init_saturation_superbias_refpix_linearity_jump".to_string()));
        assert!(argv.contains(&"--output_file=mkrefs".to_string()));
        assert!(!argv.iter().any(|a| a.contains("save_results")), "{argv:?}");
        let j = job(vec![DqInit, Saturation, Superbias, Refpix, Linearity, Jump]);
        assert_eq!(
            strun_outputs(&j),
            [(
                PathBuf::from(
                    "/out/ssb/.strun-my dark_dq_init_saturation_superbias_refpix_linearity_jump/mkrefs_ramp.fits"
                ),
                PathBuf::from(
                    "/out/ssb/my dark_dq_init_saturation_superbias_refpix_linearity_jump.fits"
                )
            )]
        );
        // Refpix runs: its optional IRS2 and SIRS files are N/A, so nothing asks CRDS.
        assert!(argv.contains(&"--steps.refpix.override_refpix=N/A".to_string()));
        assert!(argv.contains(&"--steps.refpix.override_sirskernel=N/A".to_string()));
        // Nothing NIRCam-specific or hard-coded slips in.
        assert!(!argv.iter().any(|a| a.contains("rejection_threshold")));
        assert!(!argv.iter().any(|a| a.contains("odd_even_rows")));
    }

    #[test]
    fn miri_uses_its_own_step_list() {
        let mut j = job(vec![DqInit, Saturation, Linearity]);
        j.instrument = Instrument::Miri;
        j.final_name = "d_dq_init_saturation_linearity".into();
        let argv = strun_argv(&j).unwrap();
        for skipped in [
            "firstframe",
            "lastframe",
            "rscd",
            "refpix",
            "jump",
            "ramp_fit",
        ] {
            assert!(
                argv.contains(&format!("--steps.{skipped}.skip=True")),
                "{argv:?}"
            );
        }
        // MIRI has no superbias step: skipped like every step the job does not run; the
        // saturation step's optional superbias is N/A.
        assert!(argv.contains(&"--steps.superbias.skip=True".to_string()));
        assert!(argv.contains(&"--steps.saturation.override_superbias=N/A".to_string()));
    }

    #[test]
    fn saved_products_fitopt_and_overrides() {
        let mut j = job(vec![
            DqInit, Saturation, Superbias, Refpix, Linearity, Jump, Rate,
        ]);
        j.final_name = "d_0_ramp_fit".into();
        j.save = vec![
            (SaveProduct::Step(Jump), "d_jump".into()),
            (SaveProduct::Fitopt, "d_fitopt".into()),
        ];
        j.overrides = vec![
            (
                Superbias,
                "superbias".into(),
                PathBuf::from("/refs/sb.fits"),
            ),
            (DarkCurrent, "dark".into(), PathBuf::from("/refs/dark.fits")),
        ];
        let argv = strun_argv(&j).unwrap();
        assert!(argv.contains(&"--steps.jump.save_results=True".to_string()));
        assert!(argv.contains(&"--steps.ramp_fit.save_opt=True".to_string()));
        assert!(argv.contains(&"--steps.superbias.override_superbias=/refs/sb.fits".to_string()));
        // The saturation step's optional superbias is the one given for the superbias step.
        assert!(argv.contains(&"--steps.saturation.override_superbias=/refs/sb.fits".to_string()));
        let w = |n: &str| PathBuf::from(format!("/out/ssb/.strun-d_0_ramp_fit/mkrefs_{n}.fits"));
        let d = |n: &str| PathBuf::from(format!("/out/ssb/{n}.fits"));
        assert_eq!(
            strun_outputs(&j),
            [
                (w("rate"), d("d_0_ramp_fit")),
                (w("jump"), d("d_jump")),
                (w("fitopt"), d("d_fitopt")),
            ]
        );
        // dark_current does not run: its reference file is not passed.
        assert!(
            !argv.iter().any(|a| a.contains("override_dark")),
            "{argv:?}"
        );
        assert!(strun_argv(&job(Vec::new())).is_err());
        // Products of steps that do not run cannot be saved.
        let mut k = job(vec![DqInit, Saturation]);
        k.save = vec![(SaveProduct::Fitopt, "d_fitopt".into())];
        let e = strun_argv(&k).unwrap_err();
        assert!(e.contains("fitopt") && e.contains("rate"), "{e}");
        // A step of another instrument is refused.
        let e = strun_argv(&job(vec![DqInit, Rscd])).unwrap_err();
        assert!(
            e.contains("rscd") && e.to_lowercase().contains("nircam"),
            "{e}"
        );
    }

    #[test]
    fn collecting_moves_the_products_and_names_a_missing_one() {
        let tmp = tempfile::tempdir().unwrap();
        let mut j = job(vec![
            DqInit, Saturation, Superbias, Refpix, Linearity, Jump, Rate,
        ]);
        j.output_dir = tmp.path().to_path_buf();
        j.final_name = "d_rate".into();
        j.save = vec![(SaveProduct::Step(Jump), "d_jump".into())];
        let work = strun_work_dir(&j);
        std::fs::create_dir_all(&work).unwrap();
        std::fs::write(work.join("mkrefs_rate.fits"), b"rate").unwrap();
        let e = collect_strun_outputs(&j).unwrap_err();
        assert!(
            e.contains("mkrefs_jump.fits") && e.contains("d_jump.fits"),
            "{e}"
        );
        assert!(!tmp.path().join("d_rate.fits").exists(), "nothing moved");
        std::fs::write(work.join("mkrefs_jump.fits"), b"jump").unwrap();
        std::fs::write(work.join("mkrefs_rateints.fits"), b"unwanted").unwrap();
        let moved = collect_strun_outputs(&j).unwrap();
        assert_eq!(
            moved,
            [
                tmp.path().join("d_rate.fits"),
                tmp.path().join("d_jump.fits")
            ]
        );
        assert_eq!(std::fs::read(&moved[1]).unwrap(), b"jump");
        assert!(!work.exists());
    }
}

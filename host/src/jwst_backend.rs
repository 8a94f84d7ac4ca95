//! The jwst pipeline as a calibration backend: one `strun calwebb_detector1` command per
//! calibration job, built as an argument vector (no shell, so paths and values with spaces are
//! safe), with upstream's bugs fixed (framework.md §5.6, §9):
//!
//! - skip flags come from the instrument's own step list by exact name (upstream tested
//!   substrings and passed NIRCam's list to every instrument);
//! - the final output and every saved intermediate product get the names mkrefs looks for,
//!   and `rate` is written as the pipeline's `ramp_fit` everywhere;
//! - `fitopt` asks ramp_fit for its optional output (`save_opt`);
//! - reference files from `reffile4ssb` become `--steps.<step>.override_<reftype>=<file>`;
//! - no hard-coded jump threshold or NIRCam-only refpix option.
//!
//! The pipeline logs to stderr; the exit status alone decides success.

use std::path::{Path, PathBuf};

use crate::steps::{Instrument, SaveProduct, Step};

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

/// The `strun` argument vector (program name first).
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
    for &step in job.instrument.steps() {
        if !job.run.contains(&step) {
            argv.push(format!("--steps.{}.skip=True", step.pipeline_name()));
        }
    }
    let last_name = last.pipeline_name();
    argv.push(format!("--steps.{last_name}.save_results=True"));
    argv.push(format!(
        "--steps.{last_name}.output_file={}",
        job.final_name
    ));
    argv.push(format!("--output_dir={}", path_text(&job.output_dir)));
    for (product, name) in &job.save {
        match product {
            SaveProduct::Step(step) if *step == last => {}
            SaveProduct::Step(step) => {
                if !job.run.contains(step) {
                    return Err(format!(
                        "cannot save the {} product of {}: the step does not run in this job",
                        step.name(),
                        job.input.display()
                    ));
                }
                argv.push(format!(
                    "--steps.{}.save_results=True",
                    step.pipeline_name()
                ));
                argv.push(format!(
                    "--steps.{}.output_file={name}",
                    step.pipeline_name()
                ));
            }
            // rateints is written by ramp_fit beside the rate product.
            SaveProduct::Rateints => {}
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
    Ok(argv)
}

/// Environment for a `strun` process run by mkrefs. (Completed by the offline recipe: see
/// the README section "The jwst backend without network".)
pub fn offline_environment(_scratch: &Path) -> Vec<(String, String)> {
    vec![(
        "STPIPE_DISABLE_CRDS_STEPPARS".to_string(),
        "True".to_string(),
    )]
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
        assert!(argv.contains(&"--steps.jump.save_results=True".to_string()));
        assert!(argv.contains(
            &"--steps.jump.output_file=my dark_dq_init_saturation_superbias_refpix_linearity_jump"
                .to_string()
        ));
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
        assert!(!argv.iter().any(|a| a.contains("superbias")), "{argv:?}");
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
        assert!(argv.contains(&"--steps.ramp_fit.output_file=d_0_ramp_fit".to_string()));
        assert!(argv.contains(&"--steps.jump.save_results=True".to_string()));
        assert!(argv.contains(&"--steps.jump.output_file=d_jump".to_string()));
        assert!(argv.contains(&"--steps.ramp_fit.save_opt=True".to_string()));
        assert!(argv.contains(&"--steps.superbias.override_superbias=/refs/sb.fits".to_string()));
        // dark_current does not run: its reference file is not passed.
        assert!(
            !argv.iter().any(|a| a.contains("override_dark")),
            "{argv:?}"
        );
        assert!(strun_argv(&job(Vec::new())).is_err());
    }
}

//! {{project-name}}: an mkrefs generator writing {{reftype}} reference files.
//!
//! The generator implements the support crate's [`Generator`] with plain Rust types: the host
//! hands `run` a [`JobView`] (the output path, the group's input images, already at the
//! calibration state `ssbsteps` asked for, the parameters, a scratch directory and a thread
//! budget). Write the reference file to `job.output` (the support crate's `FitsWriter` writes
//! under a temporary name and renames when complete) and return a [`Report`]. Errors become a
//! failed job; panics are caught by the export glue.

use std::path::Path;

use mkrefs_plugin_api::{GeneratorError, export_generator};
use mkrefs_support::fits::{FitsWriter, ImageReader, read_primary_header};
use mkrefs_support::generator::{Exported, Generator, Report};
use mkrefs_support::job::JobView;
use mkrefs_support::params::{Declare, Param};
use mkrefs_support::reffile::{RefMeta, history_entries};

// Each parameter is declared once: `mkrefs describe` lists the declaration, and `job.get(&VALUE)`
// reads the job's value back as the declared type.
const VALUE: Param<f64> = Param::new(
    "value",
    2.0,
    "The value written to every pixel (replace with your algorithm's parameters)",
);
const AUTHOR: Param<String> = Param::new("author", "mkrefs", "AUTHOR keyword");
const DESCRIP: Param<String> = Param::new(
    "description",
    "{{reftype}} made with {{project-name}}",
    "DESCRIP keyword (at most 65 characters)",
);
const PEDIGREE: Param<String> = Param::new("pedigree", "GROUND", "PEDIGREE keyword");
const USEAFTER: Param<String> = Param::new(
    "useafter",
    "2022-01-01T00:00:00",
    "USEAFTER keyword (YYYY-MM-DDThh:mm:ss)",
);
const HISTORY: Param<String> = Param::new("history", "", "Text added to HISTORY");

/// The generator. Keep it cheap to construct: the host creates one to list and describe it.
#[derive(Default)]
pub struct ConstantGenerator;

fn io(e: impl std::fmt::Display) -> GeneratorError {
    GeneratorError::io(e.to_string())
}

impl Generator for ConstantGenerator {
    const REFLABEL: &'static str = "{{crate_name}}";
    const REFTYPE: &'static str = "{{reftype}}";
    const DESCRIPTION: &'static str = "Writes a {{reftype}} reference file with the value of the \
        parameter `value` in every pixel, shaped and labelled like the first input. A template: \
        replace the algorithm in run.";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DEFAULT_IMTYPES: &'static str = "D";
    // How the final stage combines this generator's files of one detector (one per dark with
    // imtypes D): the median per pixel, a DQ flag kept where most files set it. Leave it out
    // for the host's rule for the reftype (the sigma-clipped mean; a MASK its flags only).
    const COMBINE: Option<(&'static str, u32)> = Some(("median", 0));
    const PARAMS: &'static [&'static dyn Declare] =
        &[&VALUE, &AUTHOR, &DESCRIP, &PEDIGREE, &USEAFTER, &HISTORY];

    fn run(&self, job: &JobView<'_>) -> Result<Report, GeneratorError> {
        let first = job
            .inputs
            .first()
            .ok_or_else(|| GeneratorError::invalid_input("the group has no input images"))?;
        let header = read_primary_header(&first.path).map_err(io)?;
        let sci = ImageReader::open(&first.path, "SCI").map_err(io)?;
        let (ny, nx) = (sci.ny(), sci.nx());
        job.info(&format!("{} input(s), {nx}x{ny} pixels", job.inputs.len()));

        // The algorithm: replace this with yours. Report progress as you go.
        let value = job.get(&VALUE)? as f32;
        let data = vec![value; ny * nx];
        job.progress("computing", 1, 1);

        let mut meta = RefMeta::from_header("{{reftype}}", "GainModel", &header, (ny, nx))
            .map_err(GeneratorError::invalid_input)?;
        meta.author = job.get(&AUTHOR)?;
        meta.description = job.get(&DESCRIP)?;
        meta.pedigree = job.get(&PEDIGREE)?;
        meta.useafter = job.get(&USEAFTER)?;
        meta.normalize_useafter();
        let inputs: Vec<&Path> = job.inputs.iter().map(|i| i.raw_path.as_path()).collect();
        meta.history = history_entries("{{project-name}}", &inputs, &job.get(&HISTORY)?);
        meta.validate().map_err(GeneratorError::invalid_parameter)?;

        let mut out = FitsWriter::create(&job.output).map_err(io)?;
        meta.write_primary(&mut out).map_err(io)?;
        out.write_image("SCI", &[ny, nx], &data).map_err(io)?;
        out.finish().map_err(io)?;
        Ok(Report {
            summary: format!("constant {value}"),
            ..Report::default()
        })
    }
}

export_generator!(Exported(ConstantGenerator));

//! {{project-name}}: an mkrefs generator writing {{reftype}} reference files.
//!
//! The host hands `call_algorithm` a [`Job`]: the output path, the group's input images (the
//! files to read, already at the calibration state `ssbsteps` asked for), the merged
//! parameters, a scratch directory and a thread budget. Write the reference file to
//! `job.output` under a temporary name (the support crate's `FitsWriter` does that) and
//! return. Errors become a failed job; panics are caught by the export glue.

use std::path::Path;

use mkrefs_plugin_api::{
    GeneratorError, GeneratorInfo, Job, JobReport, ParamKind, ParamSpec, ParamValue,
    ReferenceGenerator, export_generator,
};
use mkrefs_support::fits::{FitsWriter, ImageReader, read_primary_header};
use mkrefs_support::reffile::{RefMeta, history_entries};

/// The generator. Keep it cheap to construct: the host creates one to list and describe it.
#[derive(Default)]
pub struct Generator;

fn io(e: impl std::fmt::Display) -> GeneratorError {
    GeneratorError::io(e.to_string())
}

impl ReferenceGenerator for Generator {
    fn reflabel(&self) -> String {
        "{{crate_name}}".to_string()
    }

    fn reftype(&self) -> String {
        "{{reftype}}".to_string()
    }

    fn extra_optional_arguments(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::new(
                "value",
                ParamKind::Float,
                ParamValue::Float(2.0),
                "The value written to every pixel (replace with your algorithm's parameters)",
            ),
            ParamSpec::new(
                "author",
                ParamKind::String,
                ParamValue::str("mkrefs"),
                "AUTHOR keyword",
            ),
            ParamSpec::new(
                "description",
                ParamKind::String,
                ParamValue::str("{{reftype}} made with {{project-name}}"),
                "DESCRIP keyword (at most 65 characters)",
            ),
            ParamSpec::new(
                "pedigree",
                ParamKind::String,
                ParamValue::str("GROUND"),
                "PEDIGREE keyword",
            ),
            ParamSpec::new(
                "useafter",
                ParamKind::String,
                ParamValue::str("2022-01-01T00:00:00"),
                "USEAFTER keyword (YYYY-MM-DDThh:mm:ss)",
            ),
            ParamSpec::new(
                "history",
                ParamKind::String,
                ParamValue::str(""),
                "Text added to HISTORY",
            ),
        ]
    }

    fn info(&self) -> GeneratorInfo {
        GeneratorInfo {
            description: "Writes a {{reftype}} reference file with the value of the parameter \
                          `value` in every pixel, shaped and labelled like the first input. A \
                          template: replace the algorithm in call_algorithm."
                .into(),
            version: env!("CARGO_PKG_VERSION").into(),
            default_imtypes: "D".into(),
            default_ssbsteps: "".into(),
            default_ssb_save_steps: "".into(),
        }
    }

    fn call_algorithm(&self, job: &Job<'_>) -> Result<JobReport, GeneratorError> {
        let first = job
            .inputs
            .first()
            .ok_or_else(|| GeneratorError::invalid_input("the group has no input images"))?;
        let path = Path::new(first.path.as_str());
        let header = read_primary_header(path).map_err(io)?;
        let sci = ImageReader::open(path, "SCI").map_err(io)?;
        let (ny, nx) = (sci.ny(), sci.nx());
        job.info(&format!("{} input(s), {nx}x{ny} pixels", job.inputs.len()));

        // The algorithm: replace this with yours. Report progress as you go.
        let value = job.float_param("value")? as f32;
        let data = vec![value; ny * nx];
        job.progress("computing", 1, 1);

        let mut meta = RefMeta::from_header("{{reftype}}", "GainModel", &header, (ny, nx))
            .map_err(GeneratorError::invalid_input)?;
        meta.author = job.string_param("author")?;
        meta.description = job.string_param("description")?;
        meta.pedigree = job.string_param("pedigree")?;
        meta.useafter = job.string_param("useafter")?;
        meta.normalize_useafter();
        let inputs: Vec<&Path> = job
            .inputs
            .iter()
            .map(|i| Path::new(i.raw_path.as_str()))
            .collect();
        meta.history = history_entries("{{project-name}}", &inputs, &job.string_param("history")?);
        meta.validate().map_err(GeneratorError::invalid_parameter)?;

        let mut out = FitsWriter::create(Path::new(job.output.as_str())).map_err(io)?;
        meta.write_primary(&mut out).map_err(io)?;
        out.write_image("SCI", &[ny, nx], &data).map_err(io)?;
        out.finish().map_err(io)?;
        Ok(JobReport {
            summary: format!("constant {value}").into(),
            ..JobReport::default()
        })
    }
}

export_generator!(Generator);

//! The generator trait: the idiomatic Rust side plugin authors implement, the `#[sabi_trait]`
//! side that crosses the library boundary, and the panic-catching glue between them.

use std::panic::{AssertUnwindSafe, catch_unwind};

use abi_stable::{
    sabi_trait,
    sabi_trait::TD_Opaque,
    std_types::{RBox, RErr, ROk, ROption, RResult, RString, RVec},
};

use crate::job::Job;
use crate::types::{
    CombineRule, ErrorKind, GeneratorError, GeneratorInfo, JobReport, ParamConstraints, ParamSpec,
};

/// What a plugin author implements. Plain Rust types; panics are allowed and become job errors.
pub trait ReferenceGenerator: Send + Sync + 'static {
    /// The label users select it by (`readnoise`, `superbias`, ...). Also the config section.
    fn reflabel(&self) -> String;
    /// The CRDS reference type it writes (`READNOISE`, `SUPERBIAS`, `MASK`, ...).
    fn reftype(&self) -> String;
    /// The parameters it accepts, with kinds, defaults and help.
    fn extra_optional_arguments(&self) -> Vec<ParamSpec>;
    /// Description, version and default grouping/calibration for `mkrefs describe`.
    fn info(&self) -> GeneratorInfo;
    /// Makes the reference file `job.output` from `job.inputs`.
    fn call_algorithm(&self, job: &Job<'_>) -> Result<JobReport, GeneratorError>;
    /// Choices and ranges of the parameters (1.1), so the host refuses bad values before any
    /// job runs; parameters without an entry accept any value of their kind.
    fn param_constraints(&self) -> Vec<ParamConstraints> {
        Vec::new()
    }
    /// How this generator's reference files combine in the final stage (1.2); `None`: the
    /// host's default for the reftype.
    fn combine_rule(&self) -> Option<CombineRule> {
        None
    }
}

/// The trait object that crosses the ABI. Plugins never implement it directly: the export
/// macro wraps their [`ReferenceGenerator`], caching the metadata and catching panics, because
/// abi_stable aborts the whole process when a panic unwinds across the boundary.
#[sabi_trait]
pub trait Generator: Send + Sync {
    fn reflabel(&self) -> RString;
    fn reftype(&self) -> RString;
    fn extra_optional_arguments(&self) -> RVec<ParamSpec>;
    fn info(&self) -> GeneratorInfo;
    // No method may be added here in 1.x: abi_stable refuses a library whose vtable has fewer
    // methods than the host's, which would lock out every older plugin. 1.1's
    // `param_constraints` crosses the boundary through `constraints_ffi` instead.
    #[sabi(last_prefix_field)]
    fn call_algorithm(&self, job: &Job<'_>) -> RResult<JobReport, GeneratorError>;
}

/// An owned generator, as the host holds it.
pub type GeneratorBox = Generator_TO<'static, RBox<()>>;

/// The panic-safe wrapper: metadata is computed once at construction (inside `catch_unwind`),
/// so the getters cannot panic; `call_algorithm` runs inside `catch_unwind`.
struct Guarded<G> {
    inner: G,
    reflabel: RString,
    reftype: RString,
    arguments: RVec<ParamSpec>,
    info: GeneratorInfo,
}

impl<G: ReferenceGenerator> Generator for Guarded<G> {
    fn reflabel(&self) -> RString {
        self.reflabel.clone()
    }
    fn reftype(&self) -> RString {
        self.reftype.clone()
    }
    fn extra_optional_arguments(&self) -> RVec<ParamSpec> {
        self.arguments.clone()
    }
    fn info(&self) -> GeneratorInfo {
        self.info.clone()
    }
    fn call_algorithm(&self, job: &Job<'_>) -> RResult<JobReport, GeneratorError> {
        match catch_unwind(AssertUnwindSafe(|| self.inner.call_algorithm(job))) {
            Ok(Ok(report)) => ROk(report),
            Ok(Err(e)) => RErr(e),
            Err(payload) => RErr(panic_error(&*payload)),
        }
    }
}

fn panic_error(payload: &(dyn std::any::Any + Send)) -> GeneratorError {
    let text = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    };
    GeneratorError::new(ErrorKind::PANIC, text)
}

/// Builds the FFI trait object from a constructor, catching panics in the constructor and in
/// the metadata getters. Used by [`export_generator!`](crate::export_generator).
pub fn into_ffi<G: ReferenceGenerator>(
    make: impl FnOnce() -> G,
) -> RResult<GeneratorBox, GeneratorError> {
    let built = catch_unwind(AssertUnwindSafe(|| {
        let inner = make();
        Guarded {
            reflabel: inner.reflabel().into(),
            reftype: inner.reftype().into(),
            arguments: inner.extra_optional_arguments().into(),
            info: inner.info(),
            inner,
        }
    }));
    match built {
        Ok(guarded) => ROk(Generator_TO::from_value(guarded, TD_Opaque)),
        Err(payload) => RErr(panic_error(&*payload)),
    }
}

/// The constraints of the generator `make` builds, panics caught (plugin-api 1.1). Used by
/// [`export_generator!`](crate::export_generator) for the bundled registry and the drop-in's
/// constraints symbol.
pub fn constraints_ffi<G: ReferenceGenerator>(
    make: impl FnOnce() -> G,
) -> RResult<RVec<ParamConstraints>, GeneratorError> {
    match catch_unwind(AssertUnwindSafe(|| make().param_constraints())) {
        Ok(c) => ROk(c.into()),
        Err(payload) => RErr(panic_error(&*payload)),
    }
}

/// The combination rule of the generator `make` builds, panics caught (plugin-api 1.2). Used
/// by [`export_generator!`](crate::export_generator) as [`constraints_ffi`] is.
pub fn combine_ffi<G: ReferenceGenerator>(
    make: impl FnOnce() -> G,
) -> RResult<ROption<CombineRule>, GeneratorError> {
    match catch_unwind(AssertUnwindSafe(|| make().combine_rule())) {
        Ok(rule) => ROk(rule.into()),
        Err(payload) => RErr(panic_error(&*payload)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ParamKind;

    struct Plain;

    impl ReferenceGenerator for Plain {
        fn reflabel(&self) -> String {
            "plain".into()
        }
        fn reftype(&self) -> String {
            "GAIN".into()
        }
        fn extra_optional_arguments(&self) -> Vec<ParamSpec> {
            vec![ParamSpec::new(
                "n",
                ParamKind::Int,
                crate::ParamValue::Int(1),
                "",
            )]
        }
        fn info(&self) -> GeneratorInfo {
            GeneratorInfo::default()
        }
        fn call_algorithm(&self, _job: &Job<'_>) -> Result<JobReport, GeneratorError> {
            Ok(JobReport::default())
        }
    }

    struct Constrained;

    impl ReferenceGenerator for Constrained {
        fn reflabel(&self) -> String {
            "constrained".into()
        }
        fn reftype(&self) -> String {
            "GAIN".into()
        }
        fn extra_optional_arguments(&self) -> Vec<ParamSpec> {
            Plain.extra_optional_arguments()
        }
        fn info(&self) -> GeneratorInfo {
            GeneratorInfo::default()
        }
        fn call_algorithm(&self, _job: &Job<'_>) -> Result<JobReport, GeneratorError> {
            Ok(JobReport::default())
        }
        fn param_constraints(&self) -> Vec<ParamConstraints> {
            vec![ParamConstraints {
                minimum: abi_stable::std_types::RSome(crate::ParamBound {
                    value: 1.0,
                    inclusive: true,
                }),
                ..ParamConstraints::new("n")
            }]
        }
    }

    #[test]
    fn constraints_cross_the_boundary_and_default_to_none() {
        assert!(constraints_ffi(|| Plain).unwrap().is_empty());
        let c = constraints_ffi(|| Constrained).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].name.as_str(), "n");
        assert!(c[0].minimum.is_some() && c[0].maximum.is_none());
    }
}

//! The stable plugin ABI of mkrefs.
//!
//! A reference-file generator is a type implementing [`ReferenceGenerator`], exported once with
//! [`export_generator!`]. The macro registers it with `inventory` (so a crate linked into the
//! `mkrefs` binary is found without configuration) and, when the crate is built with its `dropin`
//! feature as a `cdylib`, exports an abi_stable root module so the host can load it from a plugin
//! directory. Either way the host sees the same [`GeneratorBox`] trait object.
//!
//! Everything that crosses the library boundary is `#[repr(C)]` and derives `StableAbi`, so
//! abi_stable checks the layout of every type when a library is loaded. This crate follows semver
//! strictly: 1.x versions only add new types, new exported symbols that older libraries may
//! lack, and new keys in the `extensions` lists; anything else is 2.0, and abi_stable refuses
//! libraries built against another major version.
//!
//! 1.1 added [`ReferenceGenerator::param_constraints`] (choices and ranges of parameters). It
//! does not extend the generator vtable or the root module: abi_stable refuses a library whose
//! prefix types have fewer fields than the host's, which would lock out every 1.0 plugin.
//! Drop-ins export the constraints under a symbol of their own ([`CONSTRAINTS_SYMBOL`]), which
//! a 1.0 library lacks, so its generator simply has none.
//!
//! 1.2 added [`ReferenceGenerator::combine_rule`] (how the final stage combines a generator's
//! files) the same way, under [`COMBINE_SYMBOL`].
#![allow(non_local_definitions, non_camel_case_types)]

mod generator;
mod job;
mod module;
mod types;

pub use generator::{
    Generator, Generator_TO, GeneratorBox, ReferenceGenerator, combine_ffi, constraints_ffi,
    into_ffi,
};
pub use job::{HostCallbacks, HostCallbacks_TO, HostRef, Job, PRODUCT_PREFIX};
pub use module::{
    BundledGenerator, COMBINE_SYMBOL, CONSTRAINTS_SYMBOL, CombineExport, CombineFn, CombineResult,
    ConstraintsExport, ConstraintsFn, ConstraintsResult, GeneratorModule, GeneratorModuleRef,
    LoadError, bundled_combine_rules, bundled_generators, bundled_generators_with_constraints,
    library_combine_rule, library_constraints, load_library, root_module,
};
pub use types::{
    CombineRule, ErrorKind, GeneratorError, GeneratorInfo, ImageKind, InputImage, JobReport,
    LogLevel, Param, ParamBound, ParamConstraints, ParamKind, ParamScalar, ParamSpec, ParamValue,
};

#[doc(hidden)]
pub use abi_stable;
#[doc(hidden)]
pub use inventory;

/// Exports a generator from a plugin crate. Write it once, at the crate root:
///
/// ```ignore
/// mkrefs_plugin_api::export_generator!(MyGenerator::default());
/// ```
///
/// The expression is evaluated each time the host asks for a generator instance. In a bundled
/// build the generator is registered with `inventory`; with the crate feature `dropin` (declare it
/// in the plugin's `Cargo.toml`, and build as `cdylib`) the abi_stable root module is exported
/// as well. The two are separate because every root module uses the same exported symbol, so two
/// bundled generators linked into one binary must not both export it.
#[macro_export]
macro_rules! export_generator {
    ($make:expr) => {
        #[doc(hidden)]
        pub extern "C" fn __mkrefs_new_generator()
        -> $crate::abi_stable::std_types::RResult<$crate::GeneratorBox, $crate::GeneratorError> {
            $crate::into_ffi(|| $make)
        }

        #[doc(hidden)]
        pub extern "C" fn __mkrefs_param_constraints() -> $crate::ConstraintsResult {
            $crate::constraints_ffi(|| $make)
        }

        #[doc(hidden)]
        pub extern "C" fn __mkrefs_combine_rule() -> $crate::CombineResult {
            $crate::combine_ffi(|| $make)
        }

        $crate::inventory::submit! {
            $crate::BundledGenerator::new(__mkrefs_new_generator, __mkrefs_param_constraints)
                .with_combine_rule(__mkrefs_combine_rule)
        }

        #[cfg(feature = "dropin")]
        #[$crate::abi_stable::export_root_module]
        pub fn __mkrefs_root_module() -> $crate::GeneratorModuleRef {
            $crate::root_module(__mkrefs_new_generator)
        }

        /// plugin-api 1.1: the parameter constraints, under a symbol a 1.0 library lacks.
        #[cfg(feature = "dropin")]
        #[unsafe(no_mangle)]
        pub extern "C" fn mkrefs_param_constraints_v1() -> $crate::ConstraintsExport {
            $crate::ConstraintsExport::new(__mkrefs_param_constraints)
        }

        /// plugin-api 1.2: the combination rule, under a symbol older libraries lack.
        #[cfg(feature = "dropin")]
        #[unsafe(no_mangle)]
        pub extern "C" fn mkrefs_combine_rule_v1() -> $crate::CombineExport {
            $crate::CombineExport::new(__mkrefs_combine_rule)
        }
    };
}

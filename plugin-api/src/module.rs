//! How generators reach the host: the inventory registry of bundled generators and the
//! abi_stable root module of drop-in libraries.

use std::path::Path;

use abi_stable::{
    StableAbi, declare_root_module_statics,
    library::{LibraryError, RawLibrary, RootModule, lib_header_from_path},
    package_version_strings,
    prefix_type::PrefixTypeTrait,
    sabi_types::VersionStrings,
    std_types::{ROption, RResult, RVec},
    type_layout::TypeLayout,
};

use crate::generator::GeneratorBox;
use crate::types::{CombineRule, GeneratorError, ParamConstraints};

/// The constructor every plugin exports.
pub type NewGeneratorFn = extern "C" fn() -> RResult<GeneratorBox, GeneratorError>;

/// What the constraints function returns (plugin-api 1.1).
pub type ConstraintsResult = RResult<RVec<ParamConstraints>, GeneratorError>;

/// The parameter constraints of a plugin's generator (plugin-api 1.1).
pub type ConstraintsFn = extern "C" fn() -> ConstraintsResult;

/// The symbol under which a 1.1 drop-in exports its [`ConstraintsExport`] function.
pub const CONSTRAINTS_SYMBOL: &str = "mkrefs_param_constraints_v1";

/// What a 1.1 drop-in's constraints symbol returns. A symbol of its own rather than a field
/// of the root module or a method of the generator: abi_stable refuses a library whose prefix
/// types have fewer fields than the host's, so growing those would lock out every 1.0 library,
/// while a missing symbol just means "no constraints".
#[repr(C)]
pub struct ConstraintsExport {
    /// The layout of [`ConstraintsResult`] the library was built with, checked by the host.
    pub layout: &'static TypeLayout,
    pub param_constraints: ConstraintsFn,
}

impl ConstraintsExport {
    pub const fn new(param_constraints: ConstraintsFn) -> Self {
        ConstraintsExport {
            layout: <ConstraintsResult as StableAbi>::LAYOUT,
            param_constraints,
        }
    }
}

/// What the combination function returns (plugin-api 1.2).
pub type CombineResult = RResult<ROption<CombineRule>, GeneratorError>;

/// The combination rule of a plugin's generator (plugin-api 1.2).
pub type CombineFn = extern "C" fn() -> CombineResult;

/// The symbol under which a 1.2 drop-in exports its [`CombineExport`] function.
pub const COMBINE_SYMBOL: &str = "mkrefs_combine_rule_v1";

/// What a 1.2 drop-in's combination symbol returns: a symbol of its own, for the reason given
/// at [`ConstraintsExport`].
#[repr(C)]
pub struct CombineExport {
    /// The layout of [`CombineResult`] the library was built with, checked by the host.
    pub layout: &'static TypeLayout,
    pub combine_rule: CombineFn,
}

impl CombineExport {
    pub const fn new(combine_rule: CombineFn) -> Self {
        CombineExport {
            layout: <CombineResult as StableAbi>::LAYOUT,
            combine_rule,
        }
    }
}

extern "C" fn no_combine_rule() -> CombineResult {
    abi_stable::std_types::ROk(ROption::RNone)
}

/// The root module of a drop-in library. A prefix type, as abi_stable wants root modules, but
/// frozen for 1.x: abi_stable refuses a library whose root module has fewer fields than the
/// host's, so 1.x additions get symbols of their own (see [`ConstraintsExport`]).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = GeneratorModuleRef)))]
#[sabi(missing_field(panic))]
pub struct GeneratorModule {
    // Spelled out: the StableAbi derive needs the function-pointer type literally.
    #[sabi(last_prefix_field)]
    pub new_generator: extern "C" fn() -> RResult<GeneratorBox, GeneratorError>,
}

impl RootModule for GeneratorModuleRef {
    declare_root_module_statics! {GeneratorModuleRef}
    const BASE_NAME: &'static str = "mkref";
    const NAME: &'static str = "mkrefs generator";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// Builds the root module a drop-in library exports (used by `export_generator!`).
pub fn root_module(new_generator: NewGeneratorFn) -> GeneratorModuleRef {
    GeneratorModule { new_generator }.leak_into_prefix()
}

/// A generator linked into the binary, registered with `inventory`.
pub struct BundledGenerator {
    pub new_generator: NewGeneratorFn,
    pub param_constraints: ConstraintsFn,
    /// plugin-api 1.2.
    pub combine_rule: CombineFn,
}

impl BundledGenerator {
    pub const fn new(new_generator: NewGeneratorFn, param_constraints: ConstraintsFn) -> Self {
        BundledGenerator {
            new_generator,
            param_constraints,
            combine_rule: no_combine_rule,
        }
    }

    /// With the combination rule (plugin-api 1.2).
    pub const fn with_combine_rule(mut self, combine_rule: CombineFn) -> Self {
        self.combine_rule = combine_rule;
        self
    }
}

inventory::collect!(BundledGenerator);

/// Every generator registered in this binary, constructed. A generator whose constructor
/// failed is returned as its error.
pub fn bundled_generators() -> Vec<Result<GeneratorBox, GeneratorError>> {
    inventory::iter::<BundledGenerator>
        .into_iter()
        .map(|b| (b.new_generator)().into_result())
        .collect()
}

/// Every bundled generator with its parameter constraints, or the error of its constructor.
pub fn bundled_generators_with_constraints()
-> Vec<Result<(GeneratorBox, RVec<ParamConstraints>), GeneratorError>> {
    inventory::iter::<BundledGenerator>
        .into_iter()
        .map(|b| {
            let generator = (b.new_generator)().into_result()?;
            Ok((generator, (b.param_constraints)().into_result()?))
        })
        .collect()
}

/// The combination rule of every bundled generator, by reflabel (plugin-api 1.2); a generator
/// that declares none, or whose constructor failed, is left out.
pub fn bundled_combine_rules() -> Vec<(String, CombineRule)> {
    inventory::iter::<BundledGenerator>
        .into_iter()
        .filter_map(|b| {
            let generator = (b.new_generator)().into_result().ok()?;
            let rule = (b.combine_rule)().into_result().ok()?.into_option()?;
            Some((generator.reflabel().into(), rule))
        })
        .collect()
}

/// Why a library could not be used as a generator.
#[derive(Debug)]
pub enum LoadError {
    /// The library could not be opened or checked; `summary` is one line, `detail` the full
    /// abi_stable report (layout mismatches run to hundreds of lines).
    Library { summary: String, detail: String },
    /// The library loaded but its constructor failed.
    Constructor(GeneratorError),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Library { summary, .. } => f.write_str(summary),
            LoadError::Constructor(e) => write!(f, "its generator could not be created: {e}"),
        }
    }
}

impl std::error::Error for LoadError {}

fn summarize(err: &LibraryError) -> String {
    match err {
        // abi_stable's own text puts the cause on a later line, so its first line would say
        // only "Could not open library at:"; the loader's message is what says why.
        LibraryError::OpenError { path, err } => open_failure(path, &err.to_string()),
        LibraryError::GetSymbolError { .. } => {
            "is not an mkrefs plugin (it exports no abi_stable root module)".to_string()
        }
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => format!(
            "was built against mkrefs-plugin-api {actual_version}, but this mkrefs uses \
             {expected_version}; rebuild the plugin against a compatible plugin-api"
        ),
        LibraryError::AbiInstability(_) => "has a plugin-api layout that does not match this \
             mkrefs (types changed); rebuild the plugin against this mkrefs-plugin-api"
            .to_string(),
        other => {
            let text = other.to_string();
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            format!("cannot be loaded: {}", first.trim())
        }
    }
}

/// Why the dynamic loader refused a library, from its message (`dlerror`), with what to do.
/// The loader names the file it could not open: the library itself (its own path is left
/// out), or a library it depends on (kept: that is the file to install).
fn open_failure(path: &Path, cause: &str) -> String {
    let cause = cause.trim();
    let own = format!("{}: ", path.display());
    let Some(rest) = cause.strip_prefix(&own) else {
        if let Some((dependency, why)) = cause.split_once(": cannot open shared object file: ") {
            return format!(
                "cannot be opened as a shared library: it needs {dependency}, which the loader \
                 cannot find ({why}); install it or add its directory to LD_LIBRARY_PATH"
            );
        }
        if cause.is_empty() {
            return "cannot be opened as a shared library (the loader gave no reason)".into();
        }
        return format!("cannot be opened as a shared library: {cause}");
    };
    let lower = rest.to_ascii_lowercase();
    let hint = if lower.contains("no such file") {
        "; the file is gone (a dangling symbolic link?)"
    } else if lower.contains("permission denied") {
        "; make the file readable by this user (chmod a+r)"
    } else if lower.contains("wrong elf class") || lower.contains("elf machine") {
        "; it was built for another architecture or word size: rebuild it for this machine"
    } else if lower.contains("invalid elf header") || lower.contains("file too short") {
        "; it is not a shared library: rebuild the plugin or remove the file"
    } else if lower.contains("undefined symbol") {
        "; rebuild the plugin against the libraries installed here"
    } else {
        ""
    };
    format!("cannot be opened as a shared library: {rest}{hint}")
}

/// Loads a drop-in generator library through its abi_stable library header. Unlike
/// `RootModule::load_from_file`, which caches one module per type, this loads any number of
/// different libraries. Libraries are never unloaded (abi_stable does not support it).
pub fn load_library(path: &Path) -> Result<GeneratorBox, LoadError> {
    let as_load_error = |e: LibraryError| LoadError::Library {
        summary: summarize(&e),
        detail: e.to_string(),
    };
    let header = lib_header_from_path(path).map_err(as_load_error)?;
    let module = header
        .init_root_module::<GeneratorModuleRef>()
        .map_err(as_load_error)?;
    (module.new_generator())()
        .into_result()
        .map_err(LoadError::Constructor)
}

/// The parameter constraints a drop-in exports (plugin-api 1.1); none for a 1.0 library, which
/// lacks the symbol. Call after [`load_library`] succeeded: that keeps the library loaded, and
/// with it the code that frees the returned vector.
pub fn library_constraints(path: &Path) -> Result<RVec<ParamConstraints>, LoadError> {
    let as_load_error = |e: LibraryError| LoadError::Library {
        summary: summarize(&e),
        detail: e.to_string(),
    };
    let library = RawLibrary::load_at(path).map_err(as_load_error)?;
    let symbol = format!("{CONSTRAINTS_SYMBOL}\0");
    // SAFETY: a library that exports this symbol was built by `export_generator!`, which
    // exports it as this function type; what it returns is checked below before use.
    let export =
        match unsafe { library.get::<extern "C" fn() -> ConstraintsExport>(symbol.as_bytes()) } {
            Ok(f) => f(),
            Err(_) => return Ok(RVec::new()),
        };
    abi_stable::abi_stability::abi_checking::check_layout_compatibility(
        <ConstraintsResult as StableAbi>::LAYOUT,
        export.layout,
    )
    .map_err(|e| LoadError::Library {
        summary: "has parameter constraints of a plugin-api layout that does not match this \
                  mkrefs; rebuild the plugin against this mkrefs-plugin-api"
            .to_string(),
        detail: e.to_string(),
    })?;
    // The library stays loaded for the life of the process, as load_library leaves it.
    std::mem::forget(library);
    (export.param_constraints)()
        .into_result()
        .map_err(LoadError::Constructor)
}

/// The combination rule a drop-in exports (plugin-api 1.2); `None` for an older library, which
/// lacks the symbol, or one that declares none. Call after [`load_library`] succeeded, as
/// [`library_constraints`].
pub fn library_combine_rule(path: &Path) -> Result<Option<CombineRule>, LoadError> {
    let as_load_error = |e: LibraryError| LoadError::Library {
        summary: summarize(&e),
        detail: e.to_string(),
    };
    let library = RawLibrary::load_at(path).map_err(as_load_error)?;
    let symbol = format!("{COMBINE_SYMBOL}\0");
    // SAFETY: a library that exports this symbol was built by `export_generator!`, which
    // exports it as this function type; what it returns is checked below before use.
    let export = match unsafe { library.get::<extern "C" fn() -> CombineExport>(symbol.as_bytes()) }
    {
        Ok(f) => f(),
        Err(_) => return Ok(None),
    };
    abi_stable::abi_stability::abi_checking::check_layout_compatibility(
        <CombineResult as StableAbi>::LAYOUT,
        export.layout,
    )
    .map_err(|e| LoadError::Library {
        summary: "has a combination rule of a plugin-api layout that does not match this \
                  mkrefs; rebuild the plugin against this mkrefs-plugin-api"
            .to_string(),
        detail: e.to_string(),
    })?;
    // The library stays loaded for the life of the process, as load_library leaves it.
    std::mem::forget(library);
    Ok((export.combine_rule)()
        .into_result()
        .map_err(LoadError::Constructor)?
        .into_option())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_failures_name_the_cause() {
        let lib = Path::new("/p/libmkref_x.so");
        let said = |cause: &str| open_failure(lib, cause);
        assert_eq!(
            said("/p/libmkref_x.so: invalid ELF header"),
            "cannot be opened as a shared library: invalid ELF header; it is not a shared \
             library: rebuild the plugin or remove the file"
        );
        let missing =
            said("libfoo.so.1: cannot open shared object file: No such file or directory");
        assert!(missing.contains("it needs libfoo.so.1"), "{missing}");
        assert!(missing.contains("LD_LIBRARY_PATH"), "{missing}");
        let class = said("/p/libmkref_x.so: wrong ELF class: ELFCLASS32");
        assert!(class.contains("wrong ELF class: ELFCLASS32"), "{class}");
        assert!(said("").contains("gave no reason"));
    }
}

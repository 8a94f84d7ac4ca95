//! Which generators a run makes and how each is set up: the reflabels among the positional
//! words, each generator's parameters (default < config section < command line), its grouping
//! (`imtypes`), the calibration state of its inputs (`ssbsteps`) and the intermediate products
//! it reads (`ssb_save_steps`).

use crate::config::params::ResolvedParam;
use crate::config::provenance::Provenance;
use crate::config::settings::ReflabelSection;
use crate::config::value::ParamSpec;
use crate::config::{self, CliParam, Settings};
use crate::inputs::group::ImTypes;
use crate::plan::options::plain_name;
use crate::prep::reads::{self, ProductUse};
use crate::prep::steps::{self, Instrument, Step};
use crate::registry::{Entry, Registry};

/// One selected generator and how the config and command line set it up.
pub(crate) struct Selected<'r> {
    pub reflabel: String,
    pub entry: &'r Entry,
    pub imtypes: ImTypes,
    pub steps: Vec<Step>,
    /// What the generator reads of each input's products (`ssb_save_steps`).
    pub save: Vec<ProductUse>,
    /// Each parameter's value and where it came from (the dry run shows both).
    pub params: Vec<ResolvedParam>,
}

/// The positional words: the generators they name, and the rest (input files, directories,
/// patterns).
pub(crate) struct Words<'r> {
    pub generators: Vec<(String, &'r Entry)>,
    pub inputs: Vec<String>,
}

/// Splits the positional words into reflabels and inputs, and finds each reflabel's generator.
pub(crate) fn split_words<'r>(
    registry: &'r Registry,
    settings: &Settings,
    items: &[String],
) -> Result<Words<'r>, String> {
    let mut known: Vec<(&str, &str)> = registry
        .entries()
        .iter()
        .map(|e| (e.reflabel.as_str(), e.reftype.as_str()))
        .collect();
    known.extend(registry.broken().iter().map(|b| (b.reflabel.as_str(), "")));
    for warning in config::check_config_reflabels(settings, &known).map_err(|e| e.to_string())? {
        tracing::warn!("{warning}");
    }
    let (labels, inputs): (Vec<String>, Vec<String>) = items
        .iter()
        .cloned()
        .partition(|t| config::is_reflabel_token(t, settings, &known));
    let misspelt = misspelt_reflabels(&inputs, settings, &known);
    if labels.is_empty() {
        let available: Vec<&str> = registry
            .entries()
            .iter()
            .map(|e| e.reflabel.as_str())
            .collect();
        let why: String = misspelt.iter().map(|m| format!(": {m}")).collect();
        return Err(format!(
            "no reflabel given{why}; name what to make before the input files, e.g. `mkrefs \
             run readnoise *_uncal.fits`; available: {}",
            available.join(", ")
        ));
    }
    if !misspelt.is_empty() {
        return Err(misspelt.join("\n"));
    }
    if inputs.is_empty() {
        return Err(
            "no input files given: add files, directories or glob patterns after the reflabel"
                .to_string(),
        );
    }
    let reflabels =
        config::resolve_reflabels(&labels, settings, &known).map_err(|e| e.to_string())?;
    let generators = reflabels
        .into_iter()
        .map(|r| registry.get(&r).map(|e| (r, e)))
        .collect::<Result<_, _>>()?;
    Ok(Words { generators, inputs })
}

/// Positional words that name no file, directory or pattern but are close to a reflabel:
/// misspelt reflabels, reported as such rather than as missing files.
fn misspelt_reflabels(
    inputs: &[String],
    settings: &Settings,
    known: &config::reflabels::KnownGenerators,
) -> Vec<String> {
    inputs
        .iter()
        .filter(|t| !t.contains(['/', '*', '?', '[']) && !std::path::Path::new(t).exists())
        .filter_map(|t| {
            let s = config::suggest_reflabel(t, settings, known)?;
            Some(format!(
                "'{t}' is neither a reflabel nor a file, directory or pattern (did you mean \
                 the reflabel '{s}'?)"
            ))
        })
        .collect()
}

/// Every selected generator's parameters, in the order of `generators`.
pub(crate) fn resolve_params(
    settings: &Settings,
    generators: &[(String, &Entry)],
    cli_params: &[CliParam],
) -> Result<Vec<Vec<ResolvedParam>>, String> {
    let specs: Vec<(&str, &[ParamSpec])> = generators
        .iter()
        .map(|(r, e)| (r.as_str(), e.params.as_slice()))
        .collect();
    let routed = config::route_cli_params(cli_params, &specs).map_err(|e| e.to_string())?;
    config::check_pall(settings, &specs).map_err(|e| e.to_string())?;
    generators
        .iter()
        .map(|(reflabel, entry)| {
            let cli: Vec<CliParam> = routed
                .iter()
                .filter(|(r, _)| r == reflabel)
                .map(|(_, p)| p.clone())
                .collect();
            config::resolve_params(reflabel, &entry.params, settings.section(reflabel), &cli)
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// A framework key of a generator's section (`imtypes`, `ssbsteps`, `ssb_save_steps`), or the
/// generator's default, with a phrase saying where it came from for messages.
struct SectionKey<'a> {
    reflabel: &'a str,
    key: &'a str,
    value: String,
    source: Option<&'a Provenance>,
}

impl SectionKey<'_> {
    fn where_(&self) -> String {
        match self.source {
            Some(p) => format!("{p}: section {}, key {}", self.reflabel, self.key),
            None => format!("generator {}'s default {}", self.reflabel, self.key),
        }
    }
}

fn section_key<'a>(
    reflabel: &'a str,
    key: &'a str,
    configured: Option<&'a config::settings::Sourced<String>>,
    default: &str,
) -> SectionKey<'a> {
    SectionKey {
        reflabel,
        key,
        value: configured.map_or_else(|| default.to_string(), |s| s.value.clone()),
        source: configured.map(|s| &s.source),
    }
}

/// Sets up one generator for the run's instrument.
pub(crate) fn configure<'r>(
    reflabel: &str,
    entry: &'r Entry,
    settings: &Settings,
    instrument: Instrument,
    params: Vec<ResolvedParam>,
) -> Result<Selected<'r>, String> {
    // Both become directory and file names below the run directory.
    plain_name(&entry.reflabel, "reflabel")?;
    plain_name(
        &entry.reftype,
        &format!("the reftype of generator {reflabel}"),
    )?;
    let section = settings.section(reflabel);
    let info = &entry.info;
    let imtypes = section_key(
        reflabel,
        "imtypes",
        section.and_then(|s| s.imtypes.as_ref()),
        &info.default_imtypes,
    );
    let ssbsteps = section_key(
        reflabel,
        "ssbsteps",
        section.and_then(|s| s.ssbsteps.as_ref()),
        &info.default_ssbsteps,
    );
    let save = section_key(
        reflabel,
        "ssb_save_steps",
        section.and_then(|s| s.ssb_save_steps.as_ref()),
        &info.default_ssb_save_steps,
    );
    let imtypes_value =
        ImTypes::parse(&imtypes.value).map_err(|e| format!("{}: {e}", imtypes.where_()))?;
    let steps = steps::expand_ssbsteps(Some(&ssbsteps.value), instrument)
        .map_err(|e| format!("{}: {e}", ssbsteps.where_()))?;
    let mut save_value = reads::parse_product_uses(Some(&save.value), instrument)
        .map_err(|e| format!("{}: {e}", save.where_()))?;
    if save.source.is_none() {
        // A generator's default describes the products of its default state; with another
        // ssbsteps, the items that state does not make are left out (and the generator says
        // what it misses, if anything).
        save_value.retain(|u| steps.contains(&u.product.producing_step()));
    } else {
        say_whole_products(&save, &save_value, &info.default_ssb_save_steps, instrument);
    }
    if let Some(p) = save_value
        .iter()
        .map(|u| u.product)
        .find(|p| !steps.contains(&p.producing_step()))
    {
        return Err(format!(
            "{}: '{p}' is made by the {} step, which ssbsteps ({}) does not include; add it to \
             ssbsteps or remove '{p}'",
            save.where_(),
            p.producing_step().name(),
            steps::join_steps(&steps)
        ));
    }
    warn_about_reftype(reflabel, entry, settings, section);
    Ok(Selected {
        reflabel: reflabel.to_string(),
        entry,
        imtypes: imtypes_value,
        steps,
        save: save_value,
        params,
    })
}

/// A configured `ssb_save_steps` that names a product bare (as upstream configurations do)
/// asks for the whole product, where the generator's default names the few extensions it
/// reads: said once, since it can multiply what a run writes (a full-frame fitopt is 1.2 GB,
/// its pedestal 34 MB).
fn say_whole_products(
    save: &SectionKey<'_>,
    configured: &[ProductUse],
    default: &str,
    instrument: Instrument,
) {
    let Ok(defaults) = reads::parse_product_uses(Some(default), instrument) else {
        return;
    };
    let whole: Vec<String> = configured
        .iter()
        .filter(|u| u.hdus.is_none())
        .filter_map(|u| {
            let d = defaults
                .iter()
                .find(|d| d.product == u.product && d.hdus.is_some())?;
            Some(format!("'{}' (it reads {d})", u.product))
        })
        .collect();
    if !whole.is_empty() {
        tracing::info!(
            "{}: {} asked for whole, so the run writes them whole; name the extensions, as the \
             generator's default does, to write only those (README, \"Run-internal products\")",
            save.where_(),
            whole.join(", ")
        );
    }
}

/// A section's `reftype` that names neither the generator's reftype nor an alias of the
/// reflabel is a likely mistake, but harmless: the file names use the generator's.
fn warn_about_reftype(
    reflabel: &str,
    entry: &Entry,
    settings: &Settings,
    section: Option<&ReflabelSection>,
) {
    let Some(rt) = section.and_then(|s| s.reftype.as_ref()) else {
        return;
    };
    let alias = settings
        .default_reflabels
        .get(&rt.value.to_ascii_lowercase())
        .is_some_and(|r| r == reflabel);
    if !rt.value.eq_ignore_ascii_case(&entry.reftype) && !alias {
        tracing::warn!(
            "{}: section {reflabel} says reftype '{}', but the generator writes {}; the file \
             names use {}",
            rt.source,
            rt.value,
            entry.reftype,
            entry.reftype.to_ascii_lowercase()
        );
    }
}

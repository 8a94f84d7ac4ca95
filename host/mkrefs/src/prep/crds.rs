//! `reffile4ssb.<reftype>: CRDS` through the crds client: the best reference files of the CRDS
//! rules, asked for once per plan, with selection from a local cache as the fallback.
//!
//! **When the client is used.** It must be *installed*: `calibration.python` (default: see
//! [`default_python`]) can run and `import crds`. And it must be *configured* (checked first,
//! without starting Python, see [`configuration`]): `CRDS_SERVER_URL` is set, or the CRDS cache
//! (`calibration.crds_path`, else `$CRDS_PATH`) holds rules (`mappings/jwst/*.pmap`) and knows
//! which context to use (`CRDS_CONTEXT`, or `config/jwst/server_config` as a sync writes it).
//! Otherwise every `CRDS` reference is chosen from the local cache by header matching
//! ([`reference_files::select_from_crds_cache`]) and the reason the client was not used is
//! logged once as a warning.
//!
//! **How it is asked.** Importing crds costs about a second, so one process answers for every
//! exposure and reftype of a plan: `<python> -c <crds_bestrefs.py>` (an argument vector, no
//! shell), fed JSON on stdin: per exposure, the CRDS matching parameters read from its primary
//! header ([`parameters`]) and the reftypes; it calls `crds.getreferences(parameters,
//! reftypes=[reftype], observatory="jwst")` per reftype, as the jwst pipeline does, and answers
//! JSON on stdout (a path, `N/A` or an error text per exposure and reftype, and the context
//! name). The process gets the environment of mkrefs, with `CRDS_PATH` set to the cache in use,
//! so every other CRDS setting (`CRDS_MODE`, `CRDS_CONTEXT`, `CRDS_SERVER_URL`,
//! `CRDS_READONLY_CACHE`...) means what it means to crds; with a server, crds may download the
//! rules and files it chooses into the cache, as it does for the pipeline.
//!
//! **What happens to the answers.** A path is the reference file of that step for that
//! exposure, logged as "CRDS context jwst_0123.pmap chose ..."; it then goes through the same
//! checks as a configured file (REFTYPE, DETECTOR, shape, by the engine). `N/A` (the rules
//! assign no file) is an error for the native engine, which needs the file, and no override for
//! the jwst backend, whose pipeline then reaches the same verdict itself. A lookup error (no
//! match, unknown reftype, a file the cache lacks) blocks that exposure's calibration job with
//! the exposure, the reftype, crds' words and what to do. Once the client is installed and
//! configured there is no silent fallback: a crds that fails to start blocks every job that
//! needed it, with crds' message.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mkrefs_support::header::{Header, HeaderValue};
use serde_json::{Value, json};

use crate::prep::references::{ExposureKeys, select_from_crds_cache};

/// The client script run by `calibration.python`.
pub const SCRIPT: &str = include_str!("crds_bestrefs.py");

/// Primary-header keywords sent to crds, with the datamodel names the JWST rules use (as
/// stdatamodels' schemas map them; a test checks the table against `crds.jwst.schema`). The
/// keys cover what JWST rmaps of the detector1 reftypes select on, and more; a key missing from
/// the header is not sent. DATE-OBS and TIME-OBS are handled by [`parameters`].
pub const PARAMETER_KEYWORDS: &[(&str, &str)] = &[
    ("TELESCOP", "META.TELESCOPE"),
    ("INSTRUME", "META.INSTRUMENT.NAME"),
    ("DETECTOR", "META.INSTRUMENT.DETECTOR"),
    ("MODULE", "META.INSTRUMENT.MODULE"),
    ("CHANNEL", "META.INSTRUMENT.CHANNEL"),
    ("BAND", "META.INSTRUMENT.BAND"),
    ("FILTER", "META.INSTRUMENT.FILTER"),
    ("PUPIL", "META.INSTRUMENT.PUPIL"),
    ("GRATING", "META.INSTRUMENT.GRATING"),
    ("CORONMSK", "META.INSTRUMENT.CORONAGRAPH"),
    ("FXD_SLIT", "META.INSTRUMENT.FIXED_SLIT"),
    ("LAMP", "META.INSTRUMENT.LAMP_STATE"),
    ("OPMODE", "META.INSTRUMENT.LAMP_MODE"),
    ("SUBARRAY", "META.SUBARRAY.NAME"),
    ("SUBSTRT1", "META.SUBARRAY.XSTART"),
    ("SUBSTRT2", "META.SUBARRAY.YSTART"),
    ("SUBSIZE1", "META.SUBARRAY.XSIZE"),
    ("SUBSIZE2", "META.SUBARRAY.YSIZE"),
    ("FASTAXIS", "META.SUBARRAY.FASTAXIS"),
    ("SLOWAXIS", "META.SUBARRAY.SLOWAXIS"),
    ("EXP_TYPE", "META.EXPOSURE.TYPE"),
    ("READPATT", "META.EXPOSURE.READPATT"),
    ("NINTS", "META.EXPOSURE.NINTS"),
    ("NGROUPS", "META.EXPOSURE.NGROUPS"),
    ("NFRAMES", "META.EXPOSURE.NFRAMES"),
    ("GROUPGAP", "META.EXPOSURE.GROUPGAP"),
    ("NOUTPUTS", "META.EXPOSURE.NOUTPUTS"),
    ("NRSTSTRT", "META.EXPOSURE.NRESETS_AT_START"),
    ("NRESETS", "META.EXPOSURE.NRESETS_BETWEEN_INTS"),
    ("FRMDIVSR", "META.EXPOSURE.FRAME_DIVISOR"),
    ("GAINFACT", "META.EXPOSURE.GAIN_FACTOR"),
    ("APERNAME", "META.APERTURE.NAME"),
    ("TSOVISIT", "META.VISIT.TSOVISIT"),
];

/// The CRDS matching parameters of an exposure: every keyword of [`PARAMETER_KEYWORDS`] the
/// primary header has, under its datamodel name (strings trimmed, numbers and booleans as
/// they are), plus `META.OBSERVATION.DATE` and `.TIME` from DATE-OBS and TIME-OBS (a DATE-OBS
/// with a `T` is split; no TIME-OBS means 00:00:00, as in header matching).
pub fn parameters(header: &Header) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for (fits, model) in PARAMETER_KEYWORDS {
        let value = match header.get(fits) {
            Some(HeaderValue::Str(s)) => json!(s.trim()),
            Some(HeaderValue::Int(i)) => json!(i),
            Some(HeaderValue::Float(f)) if f.is_finite() => json!(f),
            Some(HeaderValue::Bool(b)) => json!(b),
            _ => continue,
        };
        out.insert(model.to_string(), value);
    }
    if let Some(date) = header.get_str("DATE-OBS").map(str::trim) {
        let (day, time_in_date) = match date.split_once('T') {
            Some((d, t)) => (d, Some(t)),
            None => (date, None),
        };
        let time = header
            .get_str("TIME-OBS")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .or(time_in_date)
            .unwrap_or("00:00:00");
        out.insert("META.OBSERVATION.DATE".into(), json!(day));
        out.insert("META.OBSERVATION.TIME".into(), json!(time));
    }
    out
}

/// The Python of the client when `calibration.python` is null: the `python` (or `python3`)
/// beside `calibration.strun` - a path, or the strun found in `PATH` - when there is one (the
/// jwst package's environment has crds), else `python3` from `PATH`.
pub fn default_python(strun: &str) -> String {
    let strun_path = if strun.contains(std::path::MAIN_SEPARATOR) {
        Some(PathBuf::from(strun))
    } else {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(strun))
                .find(|p| p.is_file())
        })
    };
    strun_path
        .as_deref()
        .and_then(Path::parent)
        .and_then(|dir| {
            ["python", "python3"]
                .iter()
                .map(|name| dir.join(name))
                .find(|p| p.is_file())
        })
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "python3".to_string())
}

/// How to run the client.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClientSettings {
    /// The Python interpreter (a name looked up in `PATH`, or a path).
    pub python: String,
    /// The CRDS cache (`calibration.crds_path`, else `$CRDS_PATH`), absolute; the client runs
    /// with `CRDS_PATH` set to it, and header matching reads it.
    pub crds_path: Option<PathBuf>,
    /// More environment for the client process, over mkrefs' own.
    pub env: Vec<(String, String)>,
}

/// Whether CRDS is configured for the client (environment variables are looked up in the
/// settings' extra environment, then in mkrefs' own): how, or why not.
pub fn configuration(settings: &ClientSettings) -> Result<String, String> {
    let env = |name: &str| -> Option<String> {
        settings
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(name).ok())
            .filter(|v| !v.trim().is_empty())
    };
    if let Some(url) = env("CRDS_SERVER_URL") {
        return Ok(format!("CRDS_SERVER_URL={url}"));
    }
    let Some(cache) = &settings.crds_path else {
        return Err(
            "CRDS_SERVER_URL is not set and no CRDS cache is set (calibration.crds_path or \
             CRDS_PATH)"
                .to_string(),
        );
    };
    let mappings = cache.join("mappings").join("jwst");
    let has_pmap = std::fs::read_dir(&mappings).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| e.path().extension().is_some_and(|x| x == "pmap"))
    });
    if !has_pmap {
        return Err(format!(
            "CRDS_SERVER_URL is not set and the CRDS cache {} holds no rules ({} has no .pmap)",
            cache.display(),
            mappings.display()
        ));
    }
    if let Some(context) = env("CRDS_CONTEXT") {
        return Ok(format!(
            "CRDS cache {}, CRDS_CONTEXT={context}",
            cache.display()
        ));
    }
    let server_config = cache.join("config").join("jwst").join("server_config");
    if server_config.is_file() {
        return Ok(format!(
            "CRDS cache {}, context from {}",
            cache.display(),
            server_config.display()
        ));
    }
    Err(format!(
        "CRDS_SERVER_URL is not set and the CRDS cache {} names no context (set CRDS_CONTEXT, \
         or sync the cache so that it has {})",
        cache.display(),
        server_config.display()
    ))
}

/// One exposure's question to the client.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// For messages.
    pub exposure: PathBuf,
    pub parameters: BTreeMap<String, Value>,
    /// CRDS reftypes, lower case.
    pub reftypes: Vec<String>,
}

/// The client's answer for one exposure and reftype.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    File(PathBuf),
    /// The rules assign no file (`N/A`).
    NotApplicable,
    /// crds' words.
    Error(String),
}

/// All answers of one client run.
#[derive(Clone, Debug, PartialEq)]
pub struct Answers {
    /// The context whose rules chose (`jwst_0123.pmap`).
    pub context: String,
    pub crds_version: String,
    /// Per request, reftype -> answer.
    pub answers: Vec<BTreeMap<String, Answer>>,
}

/// What one client run gave.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientOutcome {
    Answered(Answers),
    /// The Python cannot run, or stopped before `import crds` succeeded: why.
    NotInstalled(String),
    /// crds is installed but could not answer at all: why.
    Failed(String),
}

/// The last lines of a process's stderr, for messages.
fn tail(stderr: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(stderr);
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join(" | ")
}

/// Runs the client once for every request.
pub fn ask(settings: &ClientSettings, requests: &[Request]) -> ClientOutcome {
    let input = json!({
        "exposures": requests.iter().map(|r| json!({
            "exposure": r.exposure.display().to_string(),
            "parameters": r.parameters,
            "reftypes": r.reftypes,
        })).collect::<Vec<_>>(),
    });
    let mut cmd = Command::new(&settings.python);
    cmd.arg("-c")
        .arg(SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(cache) = &settings.crds_path {
        cmd.env("CRDS_PATH", cache);
    }
    for (k, v) in &settings.env {
        cmd.env(k, v);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return ClientOutcome::NotInstalled(format!(
                "calibration.python {} cannot be run ({e})",
                settings.python
            ));
        }
    };
    // Written from a thread so that a client that writes a lot before reading cannot block.
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let body = input.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(body.as_bytes()));
    let output = match child.wait_with_output() {
        Ok(o) => o,
        Err(e) => {
            return ClientOutcome::Failed(format!("waiting for {} failed: {e}", settings.python));
        }
    };
    let _ = writer.join();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !stderr.trim().is_empty() {
        tracing::debug!(
            "crds client ({}) said:\n{}",
            settings.python,
            stderr.trim_end()
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .collect();
    let status = |v: &Value| v.get("status").and_then(Value::as_str).map(str::to_string);
    let imported = lines
        .iter()
        .any(|v| status(v).as_deref() == Some("imported"));
    let Some(reply) = lines
        .iter()
        .rev()
        .find(|v| status(v).is_some_and(|s| s != "imported"))
    else {
        let why = format!(
            "{} {} without an answer{}",
            settings.python,
            match output.status.code() {
                Some(c) => format!("exited with status {c}"),
                None => "was killed by a signal".to_string(),
            },
            match tail(&output.stderr, 3) {
                t if t.is_empty() => String::new(),
                t => format!(" ({t})"),
            }
        );
        // Before `import crds` succeeded (not a Python 3, a crash while importing): the client
        // is not installed; after: crds itself failed.
        return if imported {
            ClientOutcome::Failed(why)
        } else {
            ClientOutcome::NotInstalled(why)
        };
    };
    let text = |key: &str| reply.get(key).and_then(Value::as_str).unwrap_or_default();
    match text("status") {
        "ok" => {}
        "not_installed" => {
            return ClientOutcome::NotInstalled(format!(
                "{} cannot import crds ({})",
                settings.python,
                text("message")
            ));
        }
        _ => return ClientOutcome::Failed(text("message").to_string()),
    }
    let results = reply
        .get("results")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let answers = requests
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let found = results.get(i);
            r.reftypes
                .iter()
                .map(|rt| {
                    let a = found.and_then(|f| f.get(rt));
                    let answer =
                        if let Some(p) = a.and_then(|a| a.get("path")).and_then(Value::as_str) {
                            Answer::File(PathBuf::from(p))
                        } else if a.and_then(|a| a.get("na")).is_some() {
                            Answer::NotApplicable
                        } else {
                            Answer::Error(
                                a.and_then(|a| a.get("error"))
                                    .and_then(Value::as_str)
                                    .unwrap_or("the client gave no answer")
                                    .to_string(),
                            )
                        };
                    (rt.clone(), answer)
                })
                .collect()
        })
        .collect();
    ClientOutcome::Answered(Answers {
        context: text("context").to_string(),
        crds_version: text("crds_version").to_string(),
        answers,
    })
}

/// One `CRDS` reference to choose: an exposure and a reftype.
#[derive(Clone, Debug, PartialEq)]
pub struct Need {
    pub exposure: PathBuf,
    /// For header matching.
    pub keys: ExposureKeys,
    /// For the client ([`parameters`]).
    pub parameters: BTreeMap<String, Value>,
    /// Lower case.
    pub reftype: String,
}

/// A `CRDS` reference chosen.
#[derive(Clone, Debug, PartialEq)]
pub enum Choice {
    /// The file and why (the context, or the header matching).
    File { path: PathBuf, why: String },
    /// The rules of this context assign no file (`N/A`).
    NotApplicable { context: String },
}

/// How the `CRDS` references of a plan were chosen.
#[derive(Clone, Debug, PartialEq)]
pub enum Method {
    /// The crds client, with the context it used.
    Client { context: String },
    /// Header matching in the local cache, and why the client was not used.
    HeaderMatching { reason: String },
}

/// The choices for every need, in order, and how they were made.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolution {
    pub method: Method,
    pub choices: Vec<Result<Choice, String>>,
}

/// Chooses every `CRDS` reference of a plan: through the client when it is installed and
/// configured (one process for all), else from the local cache by header matching. Logs the
/// method once and each choice with its reason.
pub fn resolve(settings: &ClientSettings, needs: &[Need]) -> Resolution {
    // The client asks JWST's CRDS; another observatory's exposures (their profile's
    // crds_observatory) are matched in its local cache layout.
    let other = needs
        .iter()
        .map(|n| crate::prep::references::observatory(&n.keys.instrument))
        .find(|o| o != "jwst");
    let not_used = match configuration(settings) {
        _ if other.is_some() => format!(
            "the crds client is asked for JWST files only, and these exposures are {}'s",
            other.unwrap_or_default().to_ascii_uppercase()
        ),
        Err(why) => why,
        Ok(_) if needs.is_empty() => "nothing to ask".to_string(),
        Ok(how) => {
            // One request per exposure, with the union of its reftypes.
            let mut requests: Vec<Request> = Vec::new();
            for n in needs {
                match requests.iter_mut().find(|r| r.exposure == n.exposure) {
                    Some(r) if r.reftypes.contains(&n.reftype) => {}
                    Some(r) => r.reftypes.push(n.reftype.clone()),
                    None => requests.push(Request {
                        exposure: n.exposure.clone(),
                        parameters: n.parameters.clone(),
                        reftypes: vec![n.reftype.clone()],
                    }),
                }
            }
            tracing::info!(
                "reffile4ssb CRDS: asking the crds client ({}; {how}) for {} reference file(s) \
                 of {} exposure(s)",
                settings.python,
                needs.len(),
                requests.len()
            );
            match ask(settings, &requests) {
                ClientOutcome::NotInstalled(why) => why,
                ClientOutcome::Failed(why) => {
                    return client_failed(settings, needs, &why);
                }
                ClientOutcome::Answered(answers) => {
                    return from_answers(needs, &requests, &answers);
                }
            }
        }
    };
    header_matching(settings, needs, not_used)
}

/// Every need fails with the client's failure.
fn client_failed(settings: &ClientSettings, needs: &[Need], why: &str) -> Resolution {
    tracing::warn!(
        "reffile4ssb CRDS: the crds client ({}) failed: {why}",
        settings.python
    );
    Resolution {
        method: Method::Client {
            context: String::new(),
        },
        choices: needs
            .iter()
            .map(|n| {
                Err(format!(
                    "reffile4ssb.{rt} is CRDS and the crds client ({}) failed before choosing \
                     the {} file of {}: {why}; fix the CRDS setup (CRDS_PATH, CRDS_SERVER_URL, \
                     CRDS_CONTEXT, CRDS_MODE) so that crds.getreferences works, or give \
                     reffile4ssb.{rt} a file",
                    settings.python,
                    n.reftype.to_ascii_uppercase(),
                    n.exposure.display(),
                    rt = n.reftype
                ))
            })
            .collect(),
    }
}

fn from_answers(needs: &[Need], requests: &[Request], answers: &Answers) -> Resolution {
    let context = &answers.context;
    let choices = needs
        .iter()
        .map(|n| {
            let upper = n.reftype.to_ascii_uppercase();
            let answer = requests
                .iter()
                .position(|r| r.exposure == n.exposure)
                .and_then(|i| answers.answers.get(i))
                .and_then(|a| a.get(&n.reftype));
            match answer {
                Some(Answer::File(path)) => {
                    let why = format!(
                        "CRDS context {context} chose {} as {upper} for {}",
                        path.display(),
                        n.exposure.display()
                    );
                    tracing::info!("{why}");
                    Ok(Choice::File {
                        path: path.clone(),
                        why,
                    })
                }
                Some(Answer::NotApplicable) => {
                    let why = format!(
                        "CRDS context {context} assigns no {upper} file (N/A) to {}",
                        n.exposure.display()
                    );
                    tracing::info!("{why}");
                    Ok(Choice::NotApplicable {
                        context: context.clone(),
                    })
                }
                Some(Answer::Error(e)) => Err(format!(
                    "reffile4ssb.{rt} is CRDS and CRDS context {context} chose no {upper} file \
                     for {}: {e}; check the exposure's header ({}), the CRDS context and cache \
                     (CRDS_CONTEXT, CRDS_PATH: the rules and the files they name must be there, \
                     or a server must give them), or give reffile4ssb.{rt} a file",
                    n.exposure.display(),
                    describe(&n.parameters),
                    e = e.trim_end_matches('.'),
                    rt = n.reftype
                )),
                None => Err(format!(
                    "reffile4ssb.{} is CRDS and the crds client (context {context}) gave no \
                     {upper} answer for {}",
                    n.reftype,
                    n.exposure.display()
                )),
            }
        })
        .collect();
    Resolution {
        method: Method::Client {
            context: context.clone(),
        },
        choices,
    }
}

/// The parameters that matter most for messages.
fn describe(parameters: &BTreeMap<String, Value>) -> String {
    [
        "META.INSTRUMENT.DETECTOR",
        "META.SUBARRAY.NAME",
        "META.EXPOSURE.READPATT",
        "META.EXPOSURE.TYPE",
        "META.OBSERVATION.DATE",
        "META.OBSERVATION.TIME",
    ]
    .iter()
    .filter_map(|k| {
        parameters.get(*k).map(|v| match v {
            Value::String(s) => format!("{k}={s}"),
            v => format!("{k}={v}"),
        })
    })
    .collect::<Vec<_>>()
    .join(", ")
}

/// The fallback: header matching in the local cache.
fn header_matching(settings: &ClientSettings, needs: &[Need], reason: String) -> Resolution {
    if !needs.is_empty() {
        tracing::warn!(
            "reffile4ssb CRDS: the crds client is not used: {reason}; choosing from the local \
             CRDS cache by header matching instead"
        );
    }
    let choices = needs
        .iter()
        .map(|n| match &settings.crds_path {
            Some(cache) => select_from_crds_cache(cache, &n.reftype, &n.keys)
                .map(|(path, why)| {
                    let why = format!(
                        "header matching in the local CRDS cache chose {} for {}: {why}",
                        path.display(),
                        n.exposure.display()
                    );
                    tracing::info!("{why}");
                    Choice::File { path, why }
                })
                .map_err(|e| {
                    format!(
                        "no {} file for {} by header matching in the local CRDS cache (the crds \
                         client is not used: {reason}): {e}",
                        n.reftype.to_ascii_uppercase(),
                        n.exposure.display()
                    )
                }),
            None => Err(format!(
                "reffile4ssb.{} is CRDS, but the crds client is not used ({reason}) and no \
                 local CRDS cache is set to choose the {} file of {} from: set \
                 calibration.crds_path or CRDS_PATH, or make the crds client usable \
                 (calibration.python with crds installed, and CRDS_SERVER_URL or a cache with \
                 rules)",
                n.reftype,
                n.reftype.to_ascii_uppercase(),
                n.exposure.display()
            )),
        })
        .collect();
    Resolution {
        method: Method::HeaderMatching { reason },
        choices,
    }
}

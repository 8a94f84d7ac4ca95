//! A directory of simulated files for tests, benchmarks and the demo.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::{Kind, SimConfig};
use crate::error::SimError;
use crate::products::{Layout, Product, ProductSet, write_products_with};
use crate::truth::Truth;

/// One file of a dataset, named relative to the dataset directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub product: Product,
    pub file: String,
}

/// One exposure of a dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestExposure {
    pub kind: Kind,
    pub index: usize,
    pub exp_type: String,
    /// EXPSTART and EXPEND (MJD, UTC).
    pub start_mjd: f64,
    pub end_mjd: f64,
    /// The uncal file first, then the products.
    pub files: Vec<ManifestFile>,
}

impl ManifestExposure {
    /// The file of `product`, if it was written.
    pub fn file(&self, product: Product) -> Option<&str> {
        self.files
            .iter()
            .find(|f| f.product == product)
            .map(|f| f.file.as_str())
    }
}

/// What [`write_dataset`] wrote; also saved as `manifest.json` in the directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetManifest {
    /// `truth.fits`.
    pub truth: String,
    pub detector: String,
    pub subarray: String,
    /// SUBSTRT1, SUBSTRT2, SUBSIZE1, SUBSIZE2.
    pub substrt: (usize, usize),
    pub size: (usize, usize),
    pub nints: usize,
    pub ngroups: usize,
    pub seed: u64,
    /// Darks in index order, then flats.
    pub exposures: Vec<ManifestExposure>,
}

impl DatasetManifest {
    /// The exposures of one kind.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &ManifestExposure> {
        self.exposures.iter().filter(move |e| e.kind == kind)
    }

    /// Reads `manifest.json` from a dataset directory.
    pub fn read(dir: &Path) -> Result<DatasetManifest, SimError> {
        let path = dir.join("manifest.json");
        let text = std::fs::read_to_string(&path).map_err(|source| SimError::Io {
            path: path.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| SimError::Io {
            path,
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })
    }
}

/// Writes `truth.fits`, `darks` dark and `flats` flat exposures (uncal plus the products in
/// `products`) and `manifest.json` into `dir`, which must exist.
pub fn write_dataset(
    dir: &Path,
    cfg: &SimConfig,
    darks: usize,
    flats: usize,
    products: ProductSet,
) -> Result<DatasetManifest, SimError> {
    write_dataset_with(dir, cfg, darks, flats, products, Layout::Full)
}

/// [`write_dataset`] with complete or [`Layout::Lean`] fitopt products (lean ones hold only
/// what the bad-pixel search reads, for large data sets; not valid datamodels).
pub fn write_dataset_with(
    dir: &Path,
    cfg: &SimConfig,
    darks: usize,
    flats: usize,
    products: ProductSet,
    layout: Layout,
) -> Result<DatasetManifest, SimError> {
    let truth = Truth::generate(cfg)?;
    truth.write(&dir.join("truth.fits"), cfg)?;
    let mut exposures = Vec::with_capacity(darks + flats);
    let plan = (0..darks)
        .map(|i| (Kind::Dark, i))
        .chain((0..flats).map(|i| (Kind::Flat, i)));
    for (kind, index) in plan {
        let (info, files) = write_products_with(dir, cfg, &truth, kind, index, products, layout)?;
        exposures.push(ManifestExposure {
            kind,
            index,
            exp_type: info.exp_type,
            start_mjd: info.start_mjd,
            end_mjd: info.end_mjd,
            files: files
                .into_iter()
                .map(|(product, path)| ManifestFile {
                    product,
                    file: path
                        .file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                })
                .collect(),
        });
    }
    let r = cfg.resolve()?;
    let manifest = DatasetManifest {
        truth: "truth.fits".to_string(),
        detector: r.det.name.to_string(),
        subarray: r.sub.name.clone(),
        substrt: (r.sub.xstart, r.sub.ystart),
        size: (r.sub.nx, r.sub.ny),
        nints: cfg.nints,
        ngroups: cfg.ngroups,
        seed: cfg.seed,
        exposures,
    };
    let path = dir.join("manifest.json");
    let json = serde_json::to_string_pretty(&manifest).expect("the manifest is plain data");
    std::fs::write(&path, json + "\n").map_err(|source| SimError::Io { path, source })?;
    Ok(manifest)
}

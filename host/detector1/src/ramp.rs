//! An exposure's ramp in memory, as the pipeline's RampModel holds it: SCI as f32
//! `[int][group][y][x]`, GROUPDQ u8 of the same shape, PIXELDQ u32 `[y][x]`, and the primary
//! header whose S_* (step status) and R_* (reference file) keywords the steps update.
//! A 2048x2048 NIRCam exposure of 2 integrations x 10 groups is 335 MB of SCI plus 84 MB of
//! GROUPDQ, well inside the engine's memory target, so a whole exposure is held.

use std::path::{Path, PathBuf};

use mkrefs_support::fits::{FitsWriter, ImageReader, hdu_names, read_primary_header};
use mkrefs_support::header::{Header, HeaderValue, is_copyable_key};

use crate::error::StepError;
use crate::form::Form;

/// Rows per tile of a compressed GROUPDQ: the readers read bands of rows of one plane, and a
/// band that starts inside a tile decompresses the whole tile.
const FLAG_TILE_ROWS: usize = 16;

#[derive(Clone, Debug, PartialEq)]
pub struct Ramp {
    pub nints: usize,
    pub ngroups: usize,
    pub ny: usize,
    pub nx: usize,
    /// `[int][group][y][x]`, DN.
    pub sci: Vec<f32>,
    /// `[int][group][y][x]`, JWST group flags (SATURATED, JUMP_DET, DO_NOT_USE, ...).
    pub groupdq: Vec<u8>,
    /// `[y][x]`, JWST pixel flags.
    pub pixeldq: Vec<u32>,
    /// The primary header.
    pub header: Header,
}

impl Ramp {
    /// A ramp of zeros with the given shape and header.
    pub fn zeros(nints: usize, ngroups: usize, ny: usize, nx: usize, header: Header) -> Ramp {
        let n = nints * ngroups * ny * nx;
        Ramp {
            nints,
            ngroups,
            ny,
            nx,
            sci: vec![0.0; n],
            groupdq: vec![0; n],
            pixeldq: vec![0; ny * nx],
            header,
        }
    }

    /// Pixels per frame.
    pub fn frame_len(&self) -> usize {
        self.ny * self.nx
    }

    /// Index of the first pixel of frame `(int, group)` in `sci` and `groupdq`.
    pub fn frame_start(&self, int: usize, group: usize) -> usize {
        (int * self.ngroups + group) * self.frame_len()
    }

    /// Index of pixel `(int, group, y, x)`.
    pub fn index(&self, int: usize, group: usize, y: usize, x: usize) -> usize {
        self.frame_start(int, group) + y * self.nx + x
    }

    /// Reads a ramp: a level-1b `_uncal` file (SCI uint16, converted to f32 exactly) or a
    /// calibrated RampModel file (SCI f32). PIXELDQ and GROUPDQ are read when present and are
    /// zeros otherwise (as stdatamodels fills absent arrays with their schema default, 0).
    /// The primary header is kept whole; every step updates it.
    pub fn read(path: &Path) -> Result<Ramp, StepError> {
        let bad = |message: String| StepError::Ramp {
            path: path.to_path_buf(),
            message,
        };
        let header = read_primary_header(path)?;
        let mut sci = ImageReader::open(path, "SCI")?;
        let shape = sci.shape().to_vec();
        let [nints, ngroups, ny, nx] = shape[..] else {
            return Err(bad(format!(
                "SCI has shape {shape:?}; a ramp has 4 dimensions (nints, ngroups, ny, nx)"
            )));
        };
        let mut ramp = Ramp::zeros(nints, ngroups, ny, nx, header);
        let n = ramp.frame_len();
        for (plane, out) in ramp.sci.chunks_exact_mut(n).enumerate() {
            sci.read_rows(plane, 0, ny, out)?;
        }
        drop(sci);
        let names = hdu_names(path)?;
        let has = |name: &str| names.iter().any(|h| h.eq_ignore_ascii_case(name));
        if has("PIXELDQ") {
            let mut r = ImageReader::open(path, "PIXELDQ")?;
            if r.shape() != [ny, nx] {
                return Err(bad(format!(
                    "PIXELDQ has shape {:?} but SCI frames are {ny}x{nx}",
                    r.shape()
                )));
            }
            ramp.pixeldq = r.read_plane::<u32>(0)?;
        }
        if has("GROUPDQ") {
            let mut r = ImageReader::open(path, "GROUPDQ")?;
            if r.shape() != shape.as_slice() {
                return Err(bad(format!(
                    "GROUPDQ has shape {:?} but SCI has {shape:?}",
                    r.shape()
                )));
            }
            for (plane, out) in ramp.groupdq.chunks_exact_mut(n).enumerate() {
                r.read_rows(plane, 0, ny, out)?;
            }
        }
        Ok(ramp)
    }

    /// Writes the ramp as a RampModel file the jwst pipeline reads: the primary header (every
    /// card kept, DATAMODL = 'RampModel', FILENAME = the file name), SCI f32
    /// `(nints, ngroups, ny, nx)`, PIXELDQ u32 `(ny, nx)` and GROUPDQ u8. ERR is not written:
    /// the RampModel schema does not require it and stdatamodels creates it (zeros, its
    /// default) when a step asks for it, as it does for the uncal files. Last comes the (empty)
    /// ASDF extension that `strun` needs to read a file's metadata.
    pub fn write(&self, path: &Path) -> Result<PathBuf, StepError> {
        self.write_as(path, &Form::Full)
    }

    /// [`Ramp::write`] in `form`: a run-internal product holds only the extensions it names
    /// (and no ASDF extension: strun never reads it).
    pub fn write_as(&self, path: &Path, form: &Form) -> Result<PathBuf, StepError> {
        let n = self.nints * self.ngroups * self.ny * self.nx;
        if self.sci.len() != n || self.groupdq.len() != n || self.pixeldq.len() != self.frame_len()
        {
            return Err(StepError::Ramp {
                path: path.to_path_buf(),
                message: format!(
                    "the ramp's arrays do not match its shape {}x{}x{}x{} (SCI {}, GROUPDQ {}, \
                     PIXELDQ {} values)",
                    self.nints,
                    self.ngroups,
                    self.ny,
                    self.nx,
                    self.sci.len(),
                    self.groupdq.len(),
                    self.pixeldq.len()
                ),
            });
        }
        let mut w = FitsWriter::create(path)?;
        w.set_durable(form.durable());
        let filename = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        for (key, value) in self.header.iter() {
            if !is_copyable_key(key) {
                continue;
            }
            let value = match key {
                "DATAMODL" => HeaderValue::from("RampModel"),
                "FILENAME" => HeaderValue::from(filename.as_str()),
                _ => value.clone(),
            };
            w.set_primary_key(key, &value, "")?;
        }
        if !self.header.contains("DATAMODL") {
            w.set_primary_key("DATAMODL", &"RampModel".into(), "type of data model")?;
        }
        if !self.header.contains("FILENAME") {
            w.set_primary_key("FILENAME", &filename.as_str().into(), "name of the file")?;
        }
        let shape = [self.nints, self.ngroups, self.ny, self.nx];
        if form.keeps("SCI") {
            w.write_image("SCI", &shape, &self.sci)?;
        }
        if form.keeps("PIXELDQ") {
            w.write_image("PIXELDQ", &[self.ny, self.nx], &self.pixeldq)?;
        }
        if form.keeps("GROUPDQ") && form.compresses_flags() {
            w.write_image_compressed("GROUPDQ", &shape, &self.groupdq, FLAG_TILE_ROWS)?;
        } else if form.keeps("GROUPDQ") {
            w.write_image("GROUPDQ", &shape, &self.groupdq)?;
        }
        if form.durable() {
            // So that strun (the jwst backend) can continue from this product.
            w.write_asdf_extension()?;
        }
        Ok(w.finish()?)
    }

    /// Records that a step ran: `S_xxxxxx = 'COMPLETE'`, as stpipe writes `meta.cal_step`.
    pub fn set_step_complete(&mut self, step_keyword: &str) {
        self.header.set(step_keyword, "COMPLETE");
    }

    /// Records that a step was skipped: `S_xxxxxx = 'SKIPPED'`.
    pub fn set_step_skipped(&mut self, step_keyword: &str) {
        self.header.set(step_keyword, "SKIPPED");
    }

    /// Records the reference file a step used in its R_* keyword (`R_MASK`, `R_SATURA`,
    /// `R_SUPERB`, `R_LINEAR`, `R_DARK`, ...). stpipe (`Step.get_reference_file`) writes
    /// `crds://<file name>` for a file CRDS selected and the absolute path of a user override;
    /// here a path inside a CRDS cache (`.../references/jwst/...`) or already `crds://...` gives
    /// the `crds://` form, and any other path its absolute form.
    pub fn set_reference(&mut self, r_keyword: &str, path: &Path) {
        let text = path.to_string_lossy();
        let value = if text.starts_with("crds://") {
            text.into_owned()
        } else if text.contains("/references/jwst/") {
            let name = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            format!("crds://{name}")
        } else {
            std::path::absolute(path)
                .map(|a| a.to_string_lossy().into_owned())
                .unwrap_or_else(|_| text.into_owned())
        };
        self.header.set(r_keyword, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mkrefs_sim::{Kind, SimConfig, Truth, write_jump, write_uncal};
    use mkrefs_support::fits::ImageReader;

    fn small_cfg() -> SimConfig {
        SimConfig::default()
            .with_square_subarray(16)
            .with_ramp(2, 3)
            .with_defect_fraction(0.01)
    }

    #[test]
    fn uncal_read_equals_the_simulated_raw_values() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = small_cfg();
        let truth = Truth::generate(&cfg).unwrap();
        let p = dir.path().join("x_uncal.fits");
        write_uncal(&p, &cfg, &truth, Kind::Dark, 0).unwrap();
        let r = Ramp::read(&p).unwrap();
        assert_eq!((r.nints, r.ngroups, r.ny, r.nx), (2, 3, 16, 16));
        // The raw uint16 values, read independently.
        let mut raw = ImageReader::open(&p, "SCI").unwrap();
        assert_eq!(raw.stored_type(), "uint16");
        for plane in 0..6 {
            let v = raw.read_plane::<u16>(plane).unwrap();
            let got = &r.sci[plane * 256..(plane + 1) * 256];
            assert!(v.iter().zip(got).all(|(&a, &b)| f32::from(a) == b));
        }
        // Bias-level values (about 12000 DN), not BZERO-shifted ones.
        let mean: f32 = r.sci.iter().sum::<f32>() / r.sci.len() as f32;
        assert!((10_000.0..14_000.0).contains(&mean), "{mean}");
        assert!(r.pixeldq.iter().all(|&v| v == 0));
        assert!(r.groupdq.iter().all(|&v| v == 0));
        assert_eq!(r.header.get_str("DETECTOR"), Some("NRCA1"));
        assert_eq!(r.header.get_i64("NGROUPS"), Some(3));
    }

    #[test]
    fn calibrated_ramp_read_and_write_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = small_cfg();
        let truth = Truth::generate(&cfg).unwrap();
        let p = dir.path().join("x_jump.fits");
        write_jump(&p, &cfg, &truth, Kind::Dark, 0).unwrap();
        let mut r = Ramp::read(&p).unwrap();
        assert!(
            r.pixeldq.iter().any(|&v| v != 0),
            "reference pixels are flagged"
        );
        assert!(r.sci.iter().any(|&v| v.fract() != 0.0), "f32 SCI kept");
        r.set_step_complete("S_DQINIT");
        r.set_reference(
            "R_MASK",
            Path::new("/cache/references/jwst/nircam/jwst_nircam_mask_0001.fits"),
        );
        r.set_reference("R_SATURA", Path::new("my_sat.fits"));
        r.groupdq[5] = 6;
        r.sci[7] = -1.5;
        let out = dir.path().join("y_ramp.fits");
        r.write(&out).unwrap();
        let back = Ramp::read(&out).unwrap();
        assert_eq!(back.sci, r.sci);
        assert_eq!(back.groupdq, r.groupdq);
        assert_eq!(back.pixeldq, r.pixeldq);
        assert_eq!(back.header.get_str("S_DQINIT"), Some("COMPLETE"));
        assert_eq!(
            back.header.get_str("R_MASK"),
            Some("crds://jwst_nircam_mask_0001.fits")
        );
        let abs = std::env::current_dir().unwrap().join("my_sat.fits");
        assert_eq!(
            back.header.get_str("R_SATURA"),
            Some(abs.to_string_lossy().as_ref())
        );
        assert_eq!(back.header.get_str("DATAMODL"), Some("RampModel"));
        assert_eq!(back.header.get_str("FILENAME"), Some("y_ramp.fits"));
        for (k, v) in r.header.iter() {
            if !matches!(k, "DATAMODL" | "FILENAME") {
                assert_eq!(back.header.get(k), Some(v), "{k}");
            }
        }
        // The extensions a RampModel reader expects, with their types.
        let names = hdu_names(&out).unwrap();
        assert_eq!(names, ["PRIMARY", "SCI", "PIXELDQ", "GROUPDQ", "ASDF"]);
        assert_eq!(
            ImageReader::open(&out, "SCI").unwrap().stored_type(),
            "float32"
        );
        assert_eq!(
            ImageReader::open(&out, "PIXELDQ").unwrap().stored_type(),
            "uint32"
        );
        assert_eq!(
            ImageReader::open(&out, "GROUPDQ").unwrap().stored_type(),
            "uint8"
        );
    }

    #[test]
    fn a_non_ramp_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img.fits");
        let mut w = FitsWriter::create(&p).unwrap();
        w.write_image("SCI", &[4, 4], &[0f32; 16]).unwrap();
        w.finish().unwrap();
        let e = Ramp::read(&p).unwrap_err().to_string();
        assert!(e.contains("img.fits") && e.contains("4 dimensions"), "{e}");
    }
}

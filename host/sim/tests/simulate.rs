//! The simulator writes what it says, reproducibly, and the truth can be recovered from its files.

// A pixel index addresses several parallel arrays (truth maps, planes of products) at once.
#![allow(clippy::needless_range_loop)]

use std::path::{Path, PathBuf};

use mkrefs_sim::{
    DatasetManifest, DefectClass, Kind, Product, ProductSet, SimConfig, Truth, product_name,
    write_dataset, write_products, write_uncal,
};
use mkrefs_support::budget::thread_pool;
use mkrefs_support::dq;
use mkrefs_support::fits::{ImageReader, hdu_names, read_header, read_primary_header};

fn small(n: usize) -> SimConfig {
    SimConfig::default().with_square_subarray(n).with_seed(7)
}

fn read_all_f32(path: &Path, ext: &str) -> (Vec<usize>, Vec<f32>) {
    let mut r = ImageReader::open(path, ext).unwrap();
    let shape = r.shape().to_vec();
    let mut out = Vec::new();
    for p in 0..r.n_planes() {
        out.extend(r.read_plane::<f32>(p).unwrap());
    }
    (shape, out)
}

fn read_all<T: mkrefs_support::fits::Pixel>(path: &Path, ext: &str) -> Vec<T> {
    let mut r = ImageReader::open(path, ext).unwrap();
    (0..r.n_planes())
        .flat_map(|p| r.read_plane::<T>(p).unwrap())
        .collect()
}

#[test]
fn config_timing_names_and_exposure_times() {
    let cfg = SimConfig::default();
    assert!((cfg.frame_time().unwrap() - 10.737).abs() < 0.001);
    let sub = small(160);
    assert_eq!(sub.subarray.as_ref().unwrap().name, "SUB160");
    // SUB160 really reads in 0.27864 s; the model is within 2 %.
    assert!((sub.frame_time().unwrap() / 0.27864 - 1.0).abs() < 0.02);
    assert_eq!(small(64).subarray.unwrap().name, "SUB64P");
    assert_eq!(small(100).subarray.unwrap().name, "GENERIC");
    assert_eq!(
        SimConfig::default()
            .with_detector("NIS")
            .with_square_subarray(64)
            .subarray
            .unwrap()
            .name,
        "GENERIC"
    );

    let d0 = sub.exposure(Kind::Dark, 0).unwrap();
    let d1 = sub.exposure(Kind::Dark, 1).unwrap();
    let f0 = sub.exposure(Kind::Flat, 0).unwrap();
    assert_eq!(
        d0.uncal_name(),
        "jw01234001001_01101_00001_nrca1_uncal.fits"
    );
    assert_eq!(
        f0.uncal_name(),
        "jw01234001002_01101_00001_nrca1_uncal.fits"
    );
    assert_eq!(d0.exp_type, "NRC_DARK");
    assert_eq!(f0.exp_type, "NRC_FLAT");
    let duration = 2.0 * 11.0 * sub.frame_time().unwrap();
    assert!(((d0.end_mjd - d0.start_mjd) * 86400.0 - duration).abs() < 1e-3);
    assert!(((d1.start_mjd - d0.start_mjd) * 86400.0 - (duration + 600.0)).abs() < 1e-3);
    assert!(((f0.start_mjd - d0.start_mjd) * 86400.0 - 43_200.0).abs() < 1e-3);
    assert_eq!(
        product_name(&sub, Kind::Dark, 0, Product::Jump).unwrap(),
        "jw01234001001_01101_00001_nrca1_dq_init_saturation_superbias_refpix_linearity_jump.fits"
    );
    assert_eq!(
        product_name(&sub, Kind::Dark, 0, Product::Rate).unwrap(),
        "jw01234001001_01101_00001_nrca1_dq_init_saturation_superbias_refpix_linearity_jump_0_ramp_fit.fits"
    );
    for (det, dark, flat) in [
        ("NIS", "NIS_DARK", "NIS_LAMP"),
        ("NRS1", "NRS_DARK", "NRS_LAMP"),
        ("GUIDER2", "FGS_DARK", "FGS_INTFLAT"),
        ("MIRIMAGE", "MIR_DARKIMG", "MIR_FLATIMAGE"),
    ] {
        let c = SimConfig::default().with_detector(det);
        assert_eq!(c.exposure(Kind::Dark, 0).unwrap().exp_type, dark);
        assert_eq!(c.exposure(Kind::Flat, 3).unwrap().exp_type, flat);
    }
    assert!(
        SimConfig::default()
            .with_detector("NRCC1")
            .frame_time()
            .is_err()
    );
    assert!(small(64).with_substrt(2000, 1).frame_time().is_err());
}

#[test]
fn same_seed_same_bytes_whatever_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small(64).with_defect_fraction(0.003);
    let truth = Truth::generate(&cfg).unwrap();
    // Same file name in different directories, so that FILENAME is the same too.
    let write = |sub: &str, cfg: &SimConfig, threads: usize| -> PathBuf {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
        let path = dir.path().join(sub).join("x_uncal.fits");
        let truth = Truth::generate(cfg).unwrap();
        thread_pool(threads)
            .unwrap()
            .install(|| write_uncal(&path, cfg, &truth, Kind::Dark, 2).unwrap());
        path
    };
    let a = write("a", &cfg, 1);
    let b = write("b", &cfg, 2);
    let c = write("c", &cfg.clone().with_seed(8), 2);
    let (sa, sb, sc) = (
        read_all::<u16>(&a, "SCI"),
        read_all::<u16>(&b, "SCI"),
        read_all::<u16>(&c, "SCI"),
    );
    assert_eq!(sa.len(), 2 * 10 * 64 * 64);
    assert!(sa == sb, "1 and 2 threads differ");
    assert!(sa != sc, "another seed gives the same data");
    // The whole files are identical too (no creation date in them).
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());
    assert_eq!(truth, Truth::generate(&cfg).unwrap());
    // Another exposure index is another realisation.
    let d = dir.path().join("d.fits");
    write_uncal(&d, &cfg, &truth, Kind::Dark, 3).unwrap();
    assert!(read_all::<u16>(&d, "SCI") != sa);
}

#[test]
fn uncal_headers_and_uint16_storage() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small(64).with_defect_fraction(0.003);
    let truth = Truth::generate(&cfg).unwrap();
    let path = dir.path().join("x_uncal.fits");
    let info = write_uncal(&path, &cfg, &truth, Kind::Flat, 1).unwrap();
    let h = read_primary_header(&path).unwrap();
    for (k, v) in [
        ("TELESCOP", "JWST"),
        ("INSTRUME", "NIRCAM"),
        ("DETECTOR", "NRCA1"),
        ("SUBARRAY", "SUB64P"),
        ("READPATT", "RAPID"),
        ("EXP_TYPE", "NRC_FLAT"),
        ("DATAMODL", "Level1bModel"),
        ("FILTER", "F150W"),
        ("PUPIL", "CLEAR"),
    ] {
        assert_eq!(h.get_str(k), Some(v), "{k}");
    }
    for (k, v) in [
        ("SUBSTRT1", 1),
        ("SUBSTRT2", 1),
        ("SUBSIZE1", 64),
        ("SUBSIZE2", 64),
        ("FASTAXIS", -1),
        ("SLOWAXIS", 2),
        ("NINTS", 2),
        ("NGROUPS", 10),
        ("NFRAMES", 1),
        ("GROUPGAP", 0),
        ("NOUTPUTS", 1),
    ] {
        assert_eq!(h.get_i64(k), Some(v), "{k}");
    }
    let tframe = cfg.frame_time().unwrap();
    assert_eq!(h.get_f64("TFRAME"), Some(tframe));
    assert_eq!(h.get_f64("TGROUP"), Some(tframe));
    assert_eq!(h.get_f64("EXPSTART"), Some(info.start_mjd));
    assert_eq!(h.get_f64("EXPEND"), Some(info.end_mjd));
    let (date, time) = (
        h.get_str("DATE-END").unwrap(),
        h.get_str("TIME-END").unwrap(),
    );
    let mjd = mkrefs_support::timeutil::iso_to_mjd(date, Some(time)).unwrap();
    assert!((mjd - info.end_mjd).abs() * 86400.0 < 1e-3);
    let start =
        mkrefs_support::timeutil::iso_to_mjd(h.get_str("DATE-OBS").unwrap(), h.get_str("TIME-OBS"))
            .unwrap();
    assert!((start - info.start_mjd).abs() * 86400.0 < 1e-3);
    assert!(!h.contains("MJD-OBS") && !h.contains("S_DQINIT"));

    assert_eq!(
        hdu_names(&path).unwrap(),
        // ASDF: the (empty) metadata extension of jwst files, without which strun cannot
        // read the file.
        ["PRIMARY", "SCI", "PIXELDQ", "GROUPDQ", "ASDF"]
    );
    let sci = read_header(&path, "SCI").unwrap();
    assert_eq!(sci.get_i64("BITPIX"), Some(16));
    assert_eq!(sci.get_f64("BZERO"), Some(32768.0));
    assert_eq!(
        ImageReader::open(&path, "SCI").unwrap().shape(),
        [2, 10, 64, 64]
    );
    let raw = read_all::<u16>(&path, "SCI");
    let (_, as_f32) = read_all_f32(&path, "SCI");
    assert!(raw.iter().zip(&as_f32).all(|(&a, &b)| f32::from(a) == b));
    // Values above 32767 exist (saturated pixels), so the BZERO offset is exercised.
    assert!(raw.contains(&65_535));
    assert_eq!(
        read_header(&path, "PIXELDQ").unwrap().get_i64("BITPIX"),
        Some(32)
    );
    assert!(read_all::<u32>(&path, "PIXELDQ").iter().all(|&v| v == 0));
    let gdq = read_all::<u8>(&path, "GROUPDQ");
    assert_eq!(gdq.len(), raw.len());
    assert!(gdq.iter().all(|&v| v == 0));
}

#[test]
fn truth_file_round_trip_and_defect_counts() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small(160).with_defect_fraction(0.002);
    let truth = Truth::generate(&cfg).unwrap();
    let path = dir.path().join("truth.fits");
    truth.write(&path, &cfg).unwrap();
    assert_eq!(Truth::read(&path).unwrap(), truth);
    let h = read_primary_header(&path).unwrap();
    assert_eq!(h.get_i64("SEED"), Some(7));
    assert_eq!(h.get_f64("GAIN"), Some(2.0));

    // SUB160 at (1,1) has reference pixels in its first 4 rows and columns only.
    let science = 156 * 156;
    let per_class = (0.002f64 * science as f64).round() as usize;
    for class in [
        DefectClass::Dead,
        DefectClass::LowQe,
        DefectClass::Open,
        DefectClass::Hot,
        DefectClass::Saturated,
        DefectClass::Rc,
        DefectClass::Telegraph,
        DefectClass::LowPedestal,
    ] {
        assert_eq!(truth.count(class), per_class, "{class:?}");
    }
    // The 3x3 box around each OPEN pixel.
    assert_eq!(truth.count(DefectClass::AdjOpen), 8 * per_class);
    assert_eq!(h.get_i64("N_DEAD"), Some(per_class as i64));
    assert_eq!(h.get_i64("N_SATALL"), Some(per_class as i64));
    assert_eq!(
        truth.count(DefectClass::ReferencePixel),
        160 * 160 - science
    );
    let n = 160;
    for y in 0..n {
        for x in 0..n {
            let i = y * n + x;
            let v = truth.defects[i];
            if y < 4 || x < 4 {
                assert_eq!(v, dq::REFERENCE_PIXEL);
                assert_eq!((truth.dark[i], truth.qe[i]), (0.0, 0.0));
                assert!((truth.readnoise[i] - 7.0).abs() < 3.0);
            } else {
                assert_eq!(v & dq::REFERENCE_PIXEL, 0);
            }
            let qe = truth.qe[i];
            if DefectClass::Dead.matches(v) {
                assert!(qe < 0.05);
            } else if DefectClass::LowQe.matches(v) || DefectClass::Open.matches(v) {
                assert!((0.3..0.45).contains(&qe));
            }
            if DefectClass::Open.matches(v) {
                // Every OPEN pixel has its 3x3 box ADJ_OPEN and nothing else: the 4 neighbours
                // brighter (the charge it loses), the diagonal ones with a normal QE.
                for dy in -1..=1isize {
                    for dx in -1..=1isize {
                        if (dy, dx) == (0, 0) {
                            continue;
                        }
                        let j = ((y as isize + dy) as usize) * n + (x as isize + dx) as usize;
                        assert_eq!(truth.defects[j], dq::ADJ_OPEN);
                        let brighter = (1.1..1.3).contains(&truth.qe[j]);
                        assert_eq!(brighter, dy == 0 || dx == 0, "{dy} {dx}");
                    }
                }
            }
            if DefectClass::Hot.matches(v) {
                assert!((0.5..=50.0).contains(&truth.dark[i]));
            }
            if DefectClass::Rc.matches(v) {
                assert!(truth.pedestal[i] >= 500.0);
            }
            if DefectClass::LowPedestal.matches(v) {
                assert!(truth.pedestal[i] <= -300.0);
            }
            if DefectClass::Telegraph.matches(v) {
                assert!(truth.telegraph[i] >= 60.0);
            }
        }
    }
    // The default fractions give a full frame hundreds of each class.
    let full = Truth::generate(&SimConfig::default()).unwrap();
    for class in DefectClass::ALL {
        // Noisy pixels are opt-in (0 by default, see realistic.rs).
        if class == DefectClass::Noisy {
            assert_eq!(full.count(class), 0);
            continue;
        }
        assert!(full.count(class) >= 400, "{class:?}: {}", full.count(class));
    }
}

/// Writes `n` darks of a clean 160×160 subarray and returns (config, truth, uncal paths).
fn clean_darks(dir: &Path, n: usize) -> (SimConfig, Truth, Vec<PathBuf>) {
    let cfg = small(160).without_defects().without_cosmic_rays();
    let truth = Truth::generate(&cfg).unwrap();
    let paths = (0..n)
        .map(|k| {
            let p = dir.join(format!("d{k}.fits"));
            write_uncal(&p, &cfg, &truth, Kind::Dark, k).unwrap();
            p
        })
        .collect();
    (cfg, truth, paths)
}

#[test]
fn cds_noise_and_frame0_recover_readnoise_and_bias() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, truth, paths) = clean_darks(dir.path(), 3);
    let (nint, ng, npix) = (2, 10, 160 * 160);
    let tframe = cfg.frame_time().unwrap();
    // Per pixel: the independent CDS pairs (1-0, 3-2, ...) of every integration and file, and
    // group 0 of every integration and file.
    let mut cds: Vec<Vec<f64>> = vec![Vec::new(); npix];
    let mut g0: Vec<Vec<f64>> = vec![Vec::new(); npix];
    for p in &paths {
        let mut r = ImageReader::open(p, "SCI").unwrap();
        for i in 0..nint {
            let groups: Vec<Vec<f32>> = (0..ng)
                .map(|g| r.read_plane::<f32>(i * ng + g).unwrap())
                .collect();
            for k in 0..npix {
                g0[k].push(f64::from(groups[0][k]));
                for j in 0..ng / 2 {
                    cds[k].push(f64::from(groups[2 * j + 1][k] - groups[2 * j][k]));
                }
            }
        }
    }
    // For each pixel s²/σ² (σ² = READNOISE² + dark shot noise + rounding of two reads) has mean 1
    // and variance 2/(n-1); averaged over N pixels its standard error is sqrt(2/((n-1) N)).
    let n = cds[0].len() as f64;
    let mut ratio_sum = [0.0; 2];
    let mut count = [0usize; 2];
    let mut z_sum = 0.0;
    let mut z2_sum = 0.0;
    for k in 0..npix {
        let mean = cds[k].iter().sum::<f64>() / n;
        let s2 = cds[k].iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let rn = f64::from(truth.readnoise[k]);
        let dark = f64::from(truth.dark[k]);
        let expected = rn * rn + dark * tframe / cfg.gain + 2.0 / 12.0;
        let c = usize::from(truth.is_reference(k));
        ratio_sum[c] += s2 / expected;
        count[c] += 1;
        // Frame 0 = bias + one frame of dark; the mean of m reads has σ = READNOISE/√2/√m.
        let m = g0[k].len() as f64;
        let mean0 = g0[k].iter().sum::<f64>() / m;
        let sigma = (rn * rn / 2.0 + 1.0 / 12.0).sqrt() / m.sqrt();
        let z = (mean0 - f64::from(truth.bias[k]) - dark * tframe) / sigma;
        z_sum += z;
        z2_sum += z * z;
    }
    for c in 0..2 {
        let r = ratio_sum[c] / count[c] as f64;
        let se = (2.0 / ((n - 1.0) * count[c] as f64)).sqrt();
        assert!((r - 1.0).abs() < 5.0 * se, "class {c}: ratio {r}, se {se}");
    }
    let nf = npix as f64;
    assert!(
        (z_sum / nf).abs() < 5.0 / nf.sqrt(),
        "bias mean z {}",
        z_sum / nf
    );
    assert!(
        (z2_sum / nf - 1.0).abs() < 5.0 * (2.0 / nf).sqrt(),
        "bias z² {}",
        z2_sum / nf
    );
}

/// Robust centre and σ (median and 1.4826 × MAD).
fn robust(v: &[f64]) -> (f64, f64) {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    s.sort_by(f64::total_cmp);
    let med = s[s.len() / 2];
    let mut d: Vec<f64> = s.iter().map(|x| (x - med).abs()).collect();
    d.sort_by(f64::total_cmp);
    (med, 1.4826 * d[d.len() / 2])
}

/// The products of one dark and one flat exposure of a 160x160 subarray with many defects.
struct Fixture {
    dir: tempfile::TempDir,
    cfg: SimConfig,
    truth: Truth,
    darks: Vec<(Product, PathBuf)>,
    flats: Vec<(Product, PathBuf)>,
    n: usize,
    ng: usize,
    nint: usize,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let cfg = small(160).with_defect_fraction(0.002).with_ramp(2, 10);
        let truth = Truth::generate(&cfg).unwrap();
        let (_, darks) =
            write_products(dir.path(), &cfg, &truth, Kind::Dark, 0, ProductSet::ALL).unwrap();
        let (_, flats) =
            write_products(dir.path(), &cfg, &truth, Kind::Flat, 0, ProductSet::ALL).unwrap();
        Fixture {
            dir,
            cfg,
            truth,
            darks,
            flats,
            n: 160,
            ng: 10,
            nint: 2,
        }
    }

    fn npix(&self) -> usize {
        self.n * self.n
    }

    fn dark(&self, p: Product) -> PathBuf {
        file(&self.darks, p)
    }
}

fn file(set: &[(Product, PathBuf)], p: Product) -> PathBuf {
    set.iter().find(|f| f.0 == p).unwrap().1.clone()
}

#[test]
fn products_carry_the_truth() {
    let f = Fixture::new();
    headers_and_extensions_name_the_steps(&f);
    let (gdq, cr_jumps) = jump_product_is_the_bias_free_ramp_with_its_events(&f);
    // CRMAG holds the amplitudes of the flagged jumps.
    let crmag = read_all_f32(&f.dark(Product::Fitopt), "CRMAG");
    let ncr = crmag.0[1];
    let mags = crmag.1.iter().filter(|&&m| m != 0.0).count();
    assert!(mags >= cr_jumps, "{mags} magnitudes for {cr_jumps} jumps");
    assert!(ncr >= 1);
    rates_agree_with_the_truth_within_their_errors(&f);
    pedestals_show_rc_and_low_pedestal_pixels(&f);
    telegraph_pixels_jump_and_hot_pixels_have_their_rate(&f, &gdq);
}

/// S_* keys complete for the steps claimed, the rest skipped; the products' extensions; no
/// scratch files left behind.
fn headers_and_extensions_name_the_steps(f: &Fixture) {
    let jh = read_primary_header(&f.dark(Product::Jump)).unwrap();
    for k in [
        "S_DQINIT", "S_SATURA", "S_SUPERB", "S_REFPIX", "S_LINEAR", "S_JUMP",
    ] {
        assert_eq!(jh.get_str(k), Some("COMPLETE"), "{k}");
    }
    for k in ["S_GRPSCL", "S_IPC", "S_PERSIS", "S_DARK"] {
        assert_eq!(jh.get_str(k), Some("SKIPPED"), "{k}");
    }
    assert!(!jh.contains("S_RAMP"));
    assert_eq!(jh.get_str("DATAMODL"), Some("RampModel"));
    assert_eq!(jh.get_str("EXP_TYPE"), Some("NRC_DARK"));
    for p in [Product::Rate, Product::Rateints, Product::Fitopt] {
        let h = read_primary_header(&f.dark(p)).unwrap();
        // The optional output carries the state before ramp fitting, as jwst writes it.
        let fitted = (p != Product::Fitopt).then_some("COMPLETE");
        assert_eq!(h.get_str("S_RAMP"), fitted, "{p:?}");
        assert_eq!(h.get_str("S_JUMP"), Some("COMPLETE"));
    }
    assert_eq!(
        hdu_names(&f.dark(Product::Fitopt)).unwrap(),
        [
            "PRIMARY",
            "SLOPE",
            "SIGSLOPE",
            "VAR_POISSON",
            "VAR_RNOISE",
            "YINT",
            "SIGYINT",
            "PEDESTAL",
            "WEIGHTS",
            "CRMAG"
        ]
    );
    assert_eq!(
        hdu_names(&f.dark(Product::Rate)).unwrap(),
        ["PRIMARY", "SCI", "ERR", "DQ", "VAR_POISSON", "VAR_RNOISE"]
    );
    let left: Vec<_> = std::fs::read_dir(f.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// The jump SCI is the uncal ramp minus the true bias, and GROUPDQ flags every event. Returns
/// the dark's GROUPDQ and the number of cosmic-ray jumps flagged on normal pixels.
fn jump_product_is_the_bias_free_ramp_with_its_events(f: &Fixture) -> (Vec<u8>, usize) {
    let (truth, n, ng, nint, npix) = (&f.truth, f.n, f.ng, f.nint, f.npix());
    let raw = read_all::<u16>(&f.dark(Product::Uncal), "SCI");
    let (shape, sci) = read_all_f32(&f.dark(Product::Jump), "SCI");
    assert_eq!(shape, [nint, ng, n, n]);
    let gdq = read_all::<u8>(&f.dark(Product::Jump), "GROUPDQ");
    let pdq = read_all::<u32>(&f.dark(Product::Jump), "PIXELDQ");
    for k in 0..raw.len() {
        assert_eq!(sci[k], f32::from(raw[k]) - truth.bias[k % npix]);
    }
    let mut cr_jumps = 0usize;
    let mut cr_pixels_ints = 0usize;
    for p in 0..npix {
        let v = truth.defects[p];
        assert_eq!(
            pdq[p],
            if truth.is_reference(p) {
                dq::REFERENCE_PIXEL | dq::DO_NOT_USE
            } else {
                0
            }
        );
        for i in 0..nint {
            let at = |g: usize| (i * ng + g) * npix + p;
            if DefectClass::Saturated.matches(v) {
                assert!((0..ng).all(|g| raw[at(g)] == 65_535));
                assert!((0..ng).all(|g| u32::from(gdq[at(g)]) == dq::SATURATED | dq::DO_NOT_USE));
                continue;
            }
            if v != 0 {
                continue;
            }
            // Normal pixels: a flagged group jumps by at least the smallest cosmic ray (less
            // 6 σ of CDS noise); an unflagged one does not jump by more than 6 σ.
            let sigma = f64::from(truth.readnoise[p]);
            let mut hit = false;
            for g in 1..ng {
                let d = f64::from(sci[at(g)] - sci[at(g - 1)]);
                if u32::from(gdq[at(g)]) & dq::JUMP_DET != 0 {
                    assert!(d > 100.0 - 6.0 * sigma, "pixel {p} int {i} group {g}: {d}");
                    cr_jumps += 1;
                    hit = true;
                } else {
                    assert!(d.abs() < 6.0 * sigma, "pixel {p} int {i} group {g}: {d}");
                }
            }
            assert_eq!(gdq[at(0)], 0);
            cr_pixels_ints += usize::from(hit);
        }
    }
    // Cosmic rays: about rate × (hit window) × pixel-integrations (Poisson, 5 σ).
    let tframe = f.cfg.frame_time().unwrap();
    let normal = truth.defects.iter().filter(|&&v| v == 0).count();
    let expect = 1.6e-5 * tframe * 9.0 * (normal * nint) as f64;
    assert!(
        (cr_jumps as f64 - expect).abs() < 5.0 * expect.sqrt() + 1.0,
        "{cr_jumps} jumps, {expect} expected"
    );
    assert!(cr_pixels_ints <= cr_jumps);
    (gdq, cr_jumps)
}

/// Rates: darks ≈ DARK, flats ≈ illumination × QE + DARK, with z-scores of unit spread.
fn rates_agree_with_the_truth_within_their_errors(f: &Fixture) {
    let truth = &f.truth;
    for (set, illum) in [(&f.darks, 0.0), (&f.flats, 100.0)] {
        let rate_file = file(set, Product::Rate);
        let rate = read_all::<f32>(&rate_file, "SCI");
        let err = read_all::<f32>(&rate_file, "ERR");
        let rdq = read_all::<u32>(&rate_file, "DQ");
        // Residuals against the truth: their mean is within 5 standard errors of 0 and their
        // z-scores have unit spread (ERR is right to a few per cent).
        let (mut sum, mut var, mut z2, mut count) = (0.0, 0.0, 0.0, 0usize);
        for p in 0..f.npix() {
            let v = truth.defects[p];
            if truth.is_reference(p) {
                assert!(rate[p].is_nan() && rdq[p] & dq::REFERENCE_PIXEL != 0);
                continue;
            }
            if DefectClass::Saturated.matches(v) {
                assert!(rate[p].is_nan());
                let both = dq::SATURATED | dq::DO_NOT_USE;
                assert_eq!(rdq[p] & both, both);
                continue;
            }
            if v & (dq::RC | dq::TELEGRAPH | dq::OTHER_BAD_PIXEL) != 0 {
                continue;
            }
            let expected = f64::from(truth.dark[p]) + illum * f64::from(truth.qe[p]);
            let (r, e) = (f64::from(rate[p]) - expected, f64::from(err[p]));
            sum += r;
            var += e * e;
            z2 += (r / e).powi(2);
            count += 1;
        }
        let mean = sum / count as f64;
        let se = var.sqrt() / count as f64;
        assert!(
            mean.abs() < 5.0 * se,
            "illum {illum}: mean residual {mean}, se {se}"
        );
        let rms = (z2 / count as f64).sqrt();
        assert!((rms - 1.0).abs() < 0.05, "illum {illum}: rms z {rms}");
    }
}

/// PEDESTAL: high for RC, low for low-pedestal pixels, 0 where saturated in all groups, in
/// every integration; measured against the robust spread of normal pixels, as the bad-pixel
/// search measures it.
fn pedestals_show_rc_and_low_pedestal_pixels(f: &Fixture) {
    let npix = f.npix();
    let ped = read_all::<f32>(&f.dark(Product::Fitopt), "PEDESTAL");
    for i in 0..f.nint {
        let plane = &ped[i * npix..(i + 1) * npix];
        let normal: Vec<f64> = (0..npix)
            .filter(|&p| f.truth.defects[p] == 0)
            .map(|p| f64::from(plane[p]))
            .collect();
        let (med, sd) = robust(&normal);
        for p in 0..npix {
            let v = f.truth.defects[p];
            let x = f64::from(plane[p]);
            if DefectClass::Rc.matches(v) {
                assert!(x > med + 5.0 * sd, "RC pedestal {x}");
            } else if DefectClass::LowPedestal.matches(v) {
                assert!(x < med - 5.0 * sd, "low pedestal {x}");
            } else if DefectClass::Saturated.matches(v) {
                assert_eq!(x, 0.0);
            }
        }
    }
}

/// Telegraph pixels jump in most integrations; hot pixels have their dark rate.
fn telegraph_pixels_jump_and_hot_pixels_have_their_rate(f: &Fixture, gdq: &[u8]) {
    let (ng, npix) = (f.ng, f.npix());
    let rints = read_all::<f32>(&f.dark(Product::Rateints), "SCI");
    let rints_err = read_all::<f32>(&f.dark(Product::Rateints), "ERR");
    let mut tele_ints = 0;
    let mut tele_jumping = 0;
    for p in 0..npix {
        let v = f.truth.defects[p];
        for i in 0..f.nint {
            if DefectClass::Telegraph.matches(v) {
                tele_ints += 1;
                let jumps = (1..ng)
                    .filter(|&g| u32::from(gdq[(i * ng + g) * npix + p]) & dq::JUMP_DET != 0)
                    .count();
                tele_jumping += usize::from(jumps > 0);
            }
            if DefectClass::Hot.matches(v) {
                let (r, e) = (rints[i * npix + p], rints_err[i * npix + p]);
                assert!(
                    (r - f.truth.dark[p]).abs() < 6.0 * e,
                    "hot {r} vs {}",
                    f.truth.dark[p]
                );
            }
        }
    }
    // P(no switch in 9 groups) = 0.75^9 ≈ 7.5 %.
    assert!(
        tele_jumping as f64 > 0.8 * tele_ints as f64,
        "{tele_jumping}/{tele_ints}"
    );
}

#[test]
fn miri_subarray_keeps_bias_and_names_its_steps() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimConfig::default()
        .with_detector("MIRIMAGE")
        .with_subarray(mkrefs_support::geometry::Subarray {
            name: "GENERIC".into(),
            xstart: 1,
            ystart: 1,
            nx: 72,
            ny: 64,
        })
        .with_ramp(1, 6)
        .with_defect_fraction(0.002);
    let truth = Truth::generate(&cfg).unwrap();
    // MIRI has reference columns only (4 on the left in this window).
    assert_eq!(truth.count(DefectClass::ReferencePixel), 4 * 64);
    let set = ProductSet {
        jump: true,
        ..ProductSet::NONE
    };
    let (info, files) = write_products(dir.path(), &cfg, &truth, Kind::Dark, 0, set).unwrap();
    assert_eq!(info.exp_type, "MIR_DARKIMG");
    assert_eq!(files.len(), 2);
    let jump = &files[1].1;
    assert!(
        jump.to_string_lossy()
            .ends_with("_mirimage_dq_init_saturation_linearity_refpix_jump.fits")
    );
    let h = read_primary_header(jump).unwrap();
    assert_eq!(h.get_str("INSTRUME"), Some("MIRI"));
    assert_eq!(h.get_i64("NOUTPUTS"), Some(1));
    assert!(!h.contains("S_SUPERB"));
    assert_eq!(h.get_str("S_RSCD"), Some("SKIPPED"));
    let raw = read_all::<u16>(&files[0].1, "SCI");
    let sci = read_all::<f32>(jump, "SCI");
    assert!(raw.iter().zip(&sci).all(|(&a, &b)| f32::from(a) == b));
}

#[test]
fn dataset_writes_manifest_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small(64).with_defect_fraction(0.003);
    let set = ProductSet {
        rate: true,
        ..ProductSet::NONE
    };
    let m = write_dataset(dir.path(), &cfg, 2, 1, set).unwrap();
    assert_eq!(m, DatasetManifest::read(dir.path()).unwrap());
    assert_eq!(m.exposures.len(), 3);
    assert_eq!(m.of_kind(Kind::Dark).count(), 2);
    assert_eq!(m.detector, "NRCA1");
    assert_eq!(m.subarray, "SUB64P");
    let mut last = 0.0;
    for e in &m.exposures {
        assert!(e.start_mjd > last && e.end_mjd > e.start_mjd);
        last = e.end_mjd;
        let uncal = dir.path().join(e.file(Product::Uncal).unwrap());
        let rate = dir.path().join(e.file(Product::Rate).unwrap());
        assert!(e.file(Product::Jump).is_none());
        let h = read_primary_header(&uncal).unwrap();
        assert_eq!(h.get_str("EXP_TYPE"), Some(e.exp_type.as_str()));
        assert_eq!(h.get_f64("EXPSTART"), Some(e.start_mjd));
        assert_eq!(
            read_primary_header(&rate).unwrap().get_str("FILENAME"),
            e.file(Product::Rate)
        );
    }
    assert_eq!(
        Truth::read(&dir.path().join(&m.truth)).unwrap(),
        Truth::generate(&cfg).unwrap()
    );
}

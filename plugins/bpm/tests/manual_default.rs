//! `manual_flag_file: default` finds `<instrument>_<detector>_manual_flags.txt` in
//! `$MKREFS_DATA_DIR/manual_flags`. A separate test binary: it sets the environment variable.

mod common;

use common::{Hdr, In, flat_image, run_bpm, write_sci};
use mkrefs_plugin_api::ImageKind;
use mkrefs_plugin_api::{LogLevel, ParamValue};
use mkrefs_support::dq;

#[test]
fn default_file_from_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let n = 64;
    let inputs: Vec<In> = (0..3)
        .map(|i| {
            let p = write_sci(
                &dir.path().join(format!("f{i}_rate.fits")),
                &Hdr::nircam("SUB64P", (11, 21)),
                &[n, n],
                &flat_image(n, n, 100.0),
            );
            In::new(ImageKind::Flat, i, &p)
        })
        .collect();
    let default = ("manual_flag_file", ParamValue::str("default"));
    let data = dir.path().join("data");
    // SAFETY: this test binary has this one test, so no other thread reads the environment.
    unsafe { std::env::set_var("MKREFS_DATA_DIR", &data) };

    // No file there: fine, logged.
    let out = dir.path().join("a.fits");
    let o = run_bpm(&inputs, &out, std::slice::from_ref(&default));
    o.ok();
    assert!(
        o.logged(LogLevel::Info, "nircam_nrca1_manual_flags.txt"),
        "{:?}",
        o.log
    );

    // A file: SUBSTRT (11, 21) puts full-frame (x=15, y=25) at window pixel (5, 5) and the
    // column x=12 at window x=2; (2000, 2000) is outside the window.
    std::fs::create_dir_all(data.join("manual_flags")).unwrap();
    std::fs::write(
        data.join("manual_flags/nircam_nrca1_manual_flags.txt"),
        "# test flags\nx y flag\n15 25 hot\n12 : UNRELIABLE_SLOPE\n2000 2000 DEAD\n",
    )
    .unwrap();
    let out = dir.path().join("b.fits");
    let o = run_bpm(
        &inputs,
        &out,
        &[
            default,
            (
                "flat_do_not_use",
                ParamValue::List(vec![mkrefs_plugin_api::ParamScalar::Str("HOT".into())].into()),
            ),
        ],
    );
    assert!(
        o.ok()
            .summary
            .contains(&format!("{} from the manual file", n + 1))
    );
    let (m, ..) = common::read_mask(&out);
    assert_eq!(m[5 * n + 5], dq::HOT | dq::DO_NOT_USE);
    for y in 0..n {
        assert!(m[y * n + 2] & dq::UNRELIABLE_SLOPE != 0, "row {y}");
        assert!(m[y * n + 3] & dq::UNRELIABLE_SLOPE == 0, "row {y}");
    }
    let h = mkrefs_support::fits::read_primary_header(&out).unwrap();
    assert_eq!(h.get_str("BPFMANFL"), Some("default"));
}

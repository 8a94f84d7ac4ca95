#!/usr/bin/env python3
"""mkrefs generator program: a GAIN reference file from flats and darks (photon transfer).

mkrefs finds this file on its plugin path by its name, ``mkref_<reflabel>.py``, and runs it
with its Python (``$MKREFS_PYTHON``, else ``calibration.python``, else ``python3``):

* ``mkref_gain.py describe`` prints what the generator is and every parameter it accepts, as
  one JSON document (see DESCRIPTION below). Keep it fast: mkrefs asks every time it starts,
  so heavy imports (numpy, astropy) happen only in ``run``.
* ``mkref_gain.py run JOB.json`` makes the reference file the job asks for, writes it to
  ``job["output"]`` and a report to ``job["report"]``, and exits with 0. Any other exit status
  fails the job (mkrefs keeps this program's stderr in the job's log). mkrefs gives the file
  its final name only after checking it, so a crash never leaves a half-written reference file.

The algorithm is the mean-variance (photon transfer) method, per box of pixels: in the
difference of two flats the illumination pattern cancels and the variance is twice the shot
noise plus the read noise; the difference of two darks measures the read noise alone. With
S the mean flat signal above the dark in DN, the shot variance in DN^2 is S / gain:

    gain = S / ((var(F1 - F2) - var(D1 - D2)) / 2)          [e-/DN]

Each image is the last group minus the first of the first integration (correlated double
sampling removes the bias), from raw (uncal) ramps.
"""

import json
import sys

DESCRIPTION = {
    "mkrefs_generator": 1,
    "reflabel": "gain",
    "reftype": "GAIN",
    "info": {
        "version": "1.0.0",
        "description": (
            "Makes a GAIN reference file (GainModel: SCI in e-/DN) from two or more raw flats "
            "and two or more raw darks of one detector by the mean-variance (photon transfer) "
            "method, per box of box_size pixels: gain = mean flat signal above the dark / shot "
            "variance, the shot variance being half the variance of the difference of two "
            "flats less that of two darks (sigma-clipped). Reference pixels get the median "
            "gain. An example of a generator program in Python (templates/mkref-python)."
        ),
        "default_imtypes": "DF+",
        "default_ssbsteps": "",
        "default_ssb_save_steps": "",
    },
    "combine": {"method": "median", "dq_min": 0},
    "parameters": [
        {"name": "box_size", "kind": "int", "default": 64, "minimum": 8,
         "help": "Side of the square boxes of pixels over which the gain is measured."},
        {"name": "clip_sigma", "kind": "float", "default": 4.0, "exclusive_minimum": 0,
         "help": "Sigma of the clip of each box's values (cosmic rays, bad pixels)."},
        {"name": "statistic", "kind": "string", "default": "median",
         "choices": ["mean", "median"],
         "help": "How the clipped flat and dark signal of a box is averaged."},
        {"name": "author", "kind": "string", "default": "mkrefs", "help": "AUTHOR keyword."},
        {"name": "pedigree", "kind": "string", "default": "GROUND",
         "help": "PEDIGREE: SIMULATION, GROUND, DUMMY or 'INFLIGHT YYYY-MM-DD YYYY-MM-DD'."},
        {"name": "useafter", "kind": "string", "default": "2000-01-01T00:00:00",
         "help": "USEAFTER, YYYY-MM-DDThh:mm:ss."},
        {"name": "description", "kind": "string", "default": "Gain from photon transfer",
         "help": "DESCRIP keyword."},
    ],
}

# Primary-header keywords copied from the first input: what identifies the detector and the
# part of it the file applies to.
COPIED_KEYS = ["TELESCOP", "INSTRUME", "DETECTOR", "SUBARRAY", "SUBSTRT1", "SUBSTRT2",
               "SUBSIZE1", "SUBSIZE2", "FASTAXIS", "SLOWAXIS"]

# Width of the reference-pixel border of a full-frame near-infrared detector.
REFPIX = 4


def cds(path):
    """Last group minus first group of the first integration, in DN (float64)."""
    from astropy.io import fits
    import numpy as np

    # .section reads only the two groups; uint16 raw data (BZERO) cannot be memory-mapped.
    with fits.open(path, memmap=False) as hdul:
        sci = hdul["SCI"].section
        first = np.asarray(sci[0, 0], dtype=np.float64)
        last = np.asarray(sci[0, -1], dtype=np.float64)
    return last - first


def box_gain(f1, f2, d1, d2, clip_sigma, statistic):
    """The gain of one box, or NaN where the box has no usable signal."""
    import numpy as np
    from astropy.stats import sigma_clipped_stats

    mean_f, med_f, _ = sigma_clipped_stats((f1 + f2) / 2, sigma=clip_sigma)
    mean_d, med_d, _ = sigma_clipped_stats((d1 + d2) / 2, sigma=clip_sigma)
    signal = (med_f - med_d) if statistic == "median" else (mean_f - mean_d)
    _, _, std_f = sigma_clipped_stats(f1 - f2, sigma=clip_sigma)
    _, _, std_d = sigma_clipped_stats(d1 - d2, sigma=clip_sigma)
    shot = (std_f ** 2 - std_d ** 2) / 2
    if not (np.isfinite(signal) and np.isfinite(shot)) or signal <= 0 or shot <= 0:
        return np.nan
    return signal / shot


def run(job_path):
    import numpy as np
    from astropy.io import fits
    from datetime import datetime, timezone

    with open(job_path) as f:
        job = json.load(f)
    params = job["params"]
    flats = [i for i in job["inputs"] if i["kind"] == "flat"]
    darks = [i for i in job["inputs"] if i["kind"] == "dark"]
    if len(flats) < 2 or len(darks) < 2:
        sys.exit(f"gain needs two flats and two darks of a detector; job {job['cmd_id']} has "
                 f"{len(flats)} flat(s) and {len(darks)} dark(s)")
    # The first two of each (file order); more are ignored, as the report says.
    f1, f2 = (cds(i["path"]) for i in flats[:2])
    d1, d2 = (cds(i["path"]) for i in darks[:2])
    ny, nx = f1.shape
    box = params["box_size"]
    gain = np.full((ny, nx), np.nan, dtype=np.float32)
    y0, x0 = (REFPIX, REFPIX) if min(ny, nx) > 2 * REFPIX + box else (0, 0)
    for y in range(y0, ny - y0, box):
        for x in range(x0, nx - x0, box):
            s = (slice(y, min(y + box, ny - y0)), slice(x, min(x + box, nx - x0)))
            gain[s] = box_gain(f1[s], f2[s], d1[s], d2[s], params["clip_sigma"],
                               params["statistic"])
    median = float(np.nanmedian(gain))
    if not np.isfinite(median):
        sys.exit("no box of the flats has signal above the darks; are the flats illuminated?")
    gain[~np.isfinite(gain)] = median

    primary = fits.PrimaryHDU()
    h = primary.header
    with fits.open(flats[0]["path"]) as first:
        for key in COPIED_KEYS:
            if key in first[0].header:
                h[key] = first[0].header[key]
    h["TELESCOP"] = h.get("TELESCOP", "JWST")
    h["REFTYPE"] = "GAIN"
    h["DATAMODL"] = "GainModel"
    h["AUTHOR"] = params["author"]
    h["DESCRIP"] = params["description"][:65]
    h["PEDIGREE"] = params["pedigree"]
    h["USEAFTER"] = params["useafter"]
    h["DATE"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:23]
    h["FILENAME"] = job["output"].rsplit("/", 1)[-1]
    h["HISTORY"] = "Gain by photon transfer in boxes of {} pixels from {} and {}, darks {} "\
        "and {} (mkref_gain.py).".format(box, flats[0]["raw_path"], flats[1]["raw_path"],
                                         darks[0]["raw_path"], darks[1]["raw_path"])
    sci = fits.ImageHDU(gain, name="SCI")
    sci.header["BUNIT"] = "electron/DN"
    fits.HDUList([primary, sci]).writeto(job["output"], checksum=True)

    summary = f"median gain {median:.3f} e-/DN over {int(np.ceil((ny - 2 * y0) / box))}x" \
              f"{int(np.ceil((nx - 2 * x0) / box))} boxes"
    if len(flats) > 2 or len(darks) > 2:
        summary += "; only the first two flats and darks were used"
    with open(job["report"], "w") as f:
        json.dump({"summary": summary, "extra_outputs": []}, f)


def main(argv):
    if len(argv) == 2 and argv[1] == "describe":
        print(json.dumps(DESCRIPTION))
    elif len(argv) == 3 and argv[1] == "run":
        run(argv[2])
    else:
        sys.exit("usage: mkref_gain.py describe | run JOB.json")


if __name__ == "__main__":
    main(sys.argv)

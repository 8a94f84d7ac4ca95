#!/usr/bin/env python3
"""Make pipeline products the way users make them: jwst's calwebb_detector1 on uncal files.

    jwst_products.py OUTDIR STEPS SAVE UNCAL [UNCAL ...] -- [reftype=FILE ...]

Runs jwst.pipeline.Detector1Pipeline on each UNCAL file (as `strun calwebb_detector1` would),
with every step not named in STEPS (a comma list of jwst step names: dq_init, saturation,
superbias, refpix, linearity, dark_current, jump, ramp_fit) skipped and the reference files
given as `reftype=FILE` passed as `override_<reftype>` to each step that reads them. The
products get jwst's own names in OUTDIR: `<stem>_rate.fits` and `<stem>_rateints.fits` (the
pipeline's results, when ramp_fit runs), and for each step named in SAVE (a comma list, may be
empty) `<stem>_<step>.fits`, where `fitopt` saves ramp fitting's optional output
`<stem>_fitopt.fits`. Prints one JSON line per input with the files written.

It needs no CRDS server: the caller sets the offline environment of the jwst backend (every
reference file is an override; see README, "The jwst backend without network").
"""

import json
import os
import sys

# The reference files each step reads: "name?" ones only if given (N/A otherwise).
STEP_REFTYPES = {
    "dq_init": ["mask"],
    "saturation": ["saturation", "superbias?"],
    "superbias": ["superbias"],
    "refpix": ["refpix?", "sirskernel?"],
    "linearity": ["linearity"],
    "dark_current": ["dark"],
    "jump": ["gain", "readnoise"],
    "ramp_fit": ["gain", "readnoise"],
}

# Every step of calwebb_detector1 in jwst 3.0.0; those not asked for are skipped, so the
# pipeline prefetches no reference file for them.
ALL_STEPS = [
    "group_scale", "dq_init", "emicorr", "saturation", "ipc", "superbias", "refpix",
    "linearity", "persistence", "dark_current", "charge_migration", "jump",
    "clean_flicker_noise", "picture_frame", "ramp_fit", "gain_scale", "firstframe",
    "lastframe", "reset", "rscd",
]


def usage(message):
    print(f"jwst_products.py: {message}", file=sys.stderr)
    print(__doc__, file=sys.stderr)
    sys.exit(2)


def step_config(steps, save, refs):
    config = {}
    for name in ALL_STEPS:
        if name not in steps:
            config[name] = {"skip": True}
            continue
        entry = {}
        for reftype in STEP_REFTYPES.get(name, []):
            optional = reftype.endswith("?")
            reftype = reftype.rstrip("?")
            if reftype in refs:
                entry[f"override_{reftype}"] = refs[reftype]
            elif optional:
                entry[f"override_{reftype}"] = "N/A"
        if name in save:
            entry["save_results"] = True
        if name == "ramp_fit" and "fitopt" in save:
            entry["save_opt"] = True
        config[name] = entry
    return config


def main(argv):
    if "--" not in argv or len(argv) < 4:
        usage("need OUTDIR STEPS SAVE UNCAL... -- reftype=FILE...")
    split = argv.index("--")
    outdir, steps, save = argv[0], argv[1].split(","), [s for s in argv[2].split(",") if s]
    uncal, ref_args = argv[3:split], argv[split + 1:]
    unknown = [s for s in steps if s not in STEP_REFTYPES]
    if unknown:
        usage(f"unknown step(s) {unknown}; known: {sorted(STEP_REFTYPES)}")
    refs = {}
    for item in ref_args:
        reftype, sep, path = item.partition("=")
        if not sep or not os.path.exists(path):
            usage(f"reference file argument {item!r} is not reftype=FILE of an existing file")
        refs[reftype] = os.path.abspath(path)
    os.makedirs(outdir, exist_ok=True)

    from jwst.pipeline import Detector1Pipeline

    for path in uncal:
        before = set(os.listdir(outdir))
        Detector1Pipeline.call(
            path,
            output_dir=outdir,
            save_results="ramp_fit" in steps,
            steps=step_config(steps, save, refs),
        )
        made = sorted(set(os.listdir(outdir)) - before)
        print(json.dumps({"input": path, "made": made}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

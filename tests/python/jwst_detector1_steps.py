#!/usr/bin/env python3
"""Run the jwst package's calwebb_detector1 steps one at a time, saving the product of each.

    jwst_detector1_steps.py INPUT OUTDIR STEP[,STEP...] [reftype=FILE ...]

INPUT is an uncal (or partially calibrated ramp) file; STEP names are jwst step names
(group_scale, dq_init, saturation, superbias, refpix, linearity, dark_current, jump,
ramp_fit), run in the order given, each on the previous step's result, with the jwst default
parameters and the reference files given as `reftype=FILE` (mask, saturation, superbias,
linearity, dark, readnoise, gain) passed to every step that reads that reftype as
`override_<reftype>` (the saturation step's optional superbias too; the refpix step's optional
IRS2 and SIRS files are N/A unless given). After each step its result is saved as OUTDIR/<step>.fits; ramp_fit saves
OUTDIR/ramp_fit.fits (rate), OUTDIR/rateints.fits and OUTDIR/fitopt.fits (its optional output).
Prints one JSON line per step: {"step", "seconds", "status", "file"} (status is the S_* value
the step recorded: COMPLETE or SKIPPED).

This is the reference side of mkrefs' fidelity test (host/tests/fidelity.rs), which compares
these products with the native engine's. Steps are run through their Python classes rather than
`strun calwebb_detector1` so that every intermediate product is saved exactly as the step
returns it. It needs no CRDS server: the caller sets the offline environment that
`mkrefs::jwst_backend::offline_environment` describes (every reference file is an override, and
the context name stpipe records comes from a local cache configuration).
"""

import json
import os
import sys
import time

STEP_CLASSES = {
    "group_scale": ("jwst.group_scale", "GroupScaleStep", []),
    "dq_init": ("jwst.dq_init", "DQInitStep", ["mask"]),
    "saturation": ("jwst.saturation", "SaturationStep", ["saturation", "superbias?"]),
    "superbias": ("jwst.superbias", "SuperBiasStep", ["superbias"]),
    "refpix": ("jwst.refpix", "RefPixStep", ["refpix?", "sirskernel?"]),
    "linearity": ("jwst.linearity", "LinearityStep", ["linearity"]),
    "dark_current": ("jwst.dark_current", "DarkCurrentStep", ["dark"]),
    "jump": ("jwst.jump", "JumpStep", ["gain", "readnoise"]),
    "ramp_fit": ("jwst.ramp_fitting", "RampFitStep", ["gain", "readnoise"]),
}


def usage(message):
    print(f"jwst_detector1_steps.py: {message}", file=sys.stderr)
    print(__doc__, file=sys.stderr)
    sys.exit(2)


def main(argv):
    if len(argv) < 3:
        usage("need INPUT OUTDIR STEPS")
    source, outdir, step_list = argv[0], argv[1], argv[2].split(",")
    refs = {}
    for item in argv[3:]:
        reftype, sep, path = item.partition("=")
        if not sep or not path:
            usage(f"reference file argument {item!r} is not reftype=FILE")
        if not os.path.exists(path):
            usage(f"{reftype} reference file {path} does not exist")
        refs[reftype] = os.path.abspath(path)
    unknown = [s for s in step_list if s not in STEP_CLASSES]
    if unknown:
        usage(f"unknown step(s) {unknown}; known: {sorted(STEP_CLASSES)}")
    os.makedirs(outdir, exist_ok=True)

    import importlib

    from stdatamodels.jwst import datamodels

    model = datamodels.RampModel(source)
    for name in step_list:
        module, cls, reftypes = STEP_CLASSES[name]
        step_class = getattr(importlib.import_module(module), cls)
        kwargs = {}
        for reftype in reftypes:
            # "name?": a reftype the step can do without (N/A keeps it from asking CRDS).
            if reftype.endswith("?"):
                reftype = reftype[:-1]
                kwargs[f"override_{reftype}"] = refs.get(reftype, "N/A")
                continue
            if reftype not in refs:
                usage(f"step {name} needs a {reftype} reference file ({reftype}=FILE)")
            kwargs[f"override_{reftype}"] = refs[reftype]
        out = os.path.join(outdir, f"{name}.fits")
        start = time.perf_counter()
        if name == "ramp_fit":
            kwargs.update(save_opt=True, output_dir=outdir, opt_name="fitopt.fits")
            rate, rateints = step_class.call(model, **kwargs)
            rate.save(out)
            rateints.save(os.path.join(outdir, "rateints.fits"))
            result = rate
        else:
            result = step_class.call(model, **kwargs)
            result.save(out)
        seconds = time.perf_counter() - start
        status = getattr(result.meta.cal_step, name, None)
        print(json.dumps({"step": name, "seconds": round(seconds, 3), "status": status,
                          "file": out}), flush=True)
        model = result
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

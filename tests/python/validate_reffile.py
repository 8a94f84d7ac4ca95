#!/usr/bin/env python3
"""Validate JWST calibration reference files the way their consumers see them.

    validate_reffile.py PATH...

For each file, prints one JSON line:
    {"path", "model", "ok", "error", "shape", "sci_median", "sci_finite_fraction", "dq_nonzero"}
and exits with status 1 if any file fails (2 on a usage error).

A file passes only if all of these hold:

1. astropy opens it with `checksum=True` and it verifies against the FITS standard
   (`HDUList.verify("exception")`); every HDU carries CHECKSUM and DATASUM, and both verify (a
   mismatch is an astropy warning, turned into an error here).
2. The primary HDU has no data; it carries the standard reference-file keywords of the jwst
   documentation (AUTHOR, DATAMODL, DATE, DESCRIP, FILENAME, INSTRUME, PEDIGREE, REFTYPE,
   TELESCOP, USEAFTER, SUBARRAY, SUBSTRT1/2, SUBSIZE1/2, FASTAXIS, SLOWAXIS) and the
   type-specific ones (e.g. READPATT and SCI BUNIT for READNOISE; EXP_TYPE and NOUTPUTS for a
   NIRCam DARK); TELESCOP is JWST; USEAFTER is YYYY-MM-DDThh:mm:ss (a real date and time); PEDIGREE
   is SIMULATION, GROUND, DUMMY or 'INFLIGHT YYYY-MM-DD YYYY-MM-DD'. stdatamodels itself does
   not check these formats, nor that the keys are on disk (it fills TELESCOP by default).
3. Every array of the model's schema that is in the file has, on disk, the schema's dtype and
   number of dimensions (stdatamodels silently casts e.g. a float64 SCI to float32 on load), and
   the model's primary array and the extensions its documentation requires are present.
   A DQ_DEF table has the columns BIT (J), VALUE (J, TZERO 2^31), NAME (40A),
   DESCRIPTION (80A), with VALUE = 2**BIT on every row whose VALUE is not 0.
4. The stdatamodels class chosen from REFTYPE/DATAMODL (ReadnoiseModel, SuperBiasModel,
   DarkModel, DarkMIRIModel, MaskModel, GainModel; else `datamodels.open`) opens it with
   `strict_validation=True` and every Python warning turned into an error, `model.validate()`
   passes, and the arrays load with the schema's dtype and dimensions.

Statistics are over SCI (median of finite values, finite fraction) and DQ (non-zero count)
when present.
"""

import json
import math
import re
import sys
import warnings
from datetime import datetime

import numpy as np
from astropy.io import fits
from stdatamodels.jwst import datamodels

MODELS = {
    "ReadnoiseModel": datamodels.ReadnoiseModel,
    "SuperBiasModel": datamodels.SuperBiasModel,
    "DarkModel": datamodels.DarkModel,
    "DarkMIRIModel": datamodels.DarkMIRIModel,
    "MaskModel": datamodels.MaskModel,
    "GainModel": datamodels.GainModel,
}

# REFTYPE -> model name (DARK depends on the instrument).
REFTYPES = {
    "READNOISE": "ReadnoiseModel",
    "SUPERBIAS": "SuperBiasModel",
    "DARK": "DarkModel",
    "MASK": "MaskModel",
    "GAIN": "GainModel",
}

STANDARD_KEYS = [
    "AUTHOR", "DATAMODL", "DATE", "DESCRIP", "FILENAME", "INSTRUME", "PEDIGREE", "REFTYPE",
    "TELESCOP", "USEAFTER",
    "SUBARRAY", "SUBSTRT1", "SUBSIZE1", "SUBSTRT2", "SUBSIZE2", "FASTAXIS", "SLOWAXIS",
]

# Extensions the jwst documentation requires in each reference file type.
REQUIRED_HDUS = {
    "ReadnoiseModel": ["SCI"],
    "SuperBiasModel": ["SCI", "ERR", "DQ", "DQ_DEF"],
    "DarkModel": ["SCI", "ERR", "DQ", "DQ_DEF"],
    "DarkMIRIModel": ["SCI", "ERR", "DQ", "DQ_DEF"],
    "MaskModel": ["DQ", "DQ_DEF"],
    "GainModel": ["SCI"],
}

# (repeat count, type code) of each DQ_DEF column's TFORM; '1J' and 'J' are the same.
DQ_DEF_FORMATS = {"BIT": (1, "J"), "VALUE": (1, "J"), "NAME": (40, "A"), "DESCRIPTION": (80, "A")}


def parse_tform(tform):
    m = re.fullmatch(r"\s*(\d*)([A-Z])\s*", str(tform))
    return (int(m.group(1) or 1), m.group(2)) if m else None


def type_specific_keys(model_name, primary):
    """(HDU, key) pairs the jwst documentation requires for this type (CRDS selectors)."""
    inst = str(primary.get("INSTRUME", "")).upper()
    keys = [("PRIMARY", "DETECTOR")]
    if model_name == "ReadnoiseModel":
        keys += [("PRIMARY", "READPATT"), ("SCI", "BUNIT")]
    elif model_name == "SuperBiasModel":
        keys += [("PRIMARY", "READPATT")]
    elif model_name in ("DarkModel", "DarkMIRIModel"):
        if inst == "NIRCAM":
            keys += [("PRIMARY", "EXP_TYPE"), ("PRIMARY", "NOUTPUTS")]
        else:
            keys += [("PRIMARY", "READPATT")]
    elif model_name == "MaskModel":
        if inst == "FGS":
            keys += [("PRIMARY", "EXP_TYPE")]
        if inst == "NIRSPEC":
            keys += [("PRIMARY", "READPATT")]
    return keys


def check_useafter(value):
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", value):
        return f"USEAFTER {value!r} is not YYYY-MM-DDThh:mm:ss (the T and the time are required)"
    try:
        datetime.strptime(value, "%Y-%m-%dT%H:%M:%S")
    except ValueError as e:
        return f"USEAFTER {value!r} is not a real date and time ({e})"
    return None


def check_pedigree(value):
    if value in ("SIMULATION", "GROUND", "DUMMY"):
        return None
    parts = value.split(" ") if isinstance(value, str) else []
    if len(parts) == 3 and parts[0] == "INFLIGHT":
        try:
            start, end = (datetime.strptime(p, "%Y-%m-%d") for p in parts[1:])
        except ValueError:
            pass
        else:
            if start <= end:
                return None
    return (f"PEDIGREE {value!r} is not SIMULATION, GROUND, DUMMY or "
            "'INFLIGHT YYYY-MM-DD YYYY-MM-DD'")


def pick_model(primary):
    """The model name for a primary header, and a problem if REFTYPE and DATAMODL disagree."""
    datamodl = primary.get("DATAMODL")
    reftype = str(primary.get("REFTYPE", "")).upper()
    by_reftype = REFTYPES.get(reftype)
    if by_reftype == "DarkModel" and str(primary.get("INSTRUME", "")).upper() == "MIRI":
        by_reftype = "DarkMIRIModel"
    if datamodl in MODELS:
        if by_reftype and by_reftype != datamodl:
            return datamodl, f"DATAMODL {datamodl} does not match REFTYPE {reftype} ({by_reftype})"
        return datamodl, None
    if by_reftype:
        return by_reftype, None
    return None, None


def schema_arrays(model):
    """{attribute: (hdu, dtype, ndim or None)} for the top-level arrays of a model's schema."""
    arrays = {}

    def walk(schema):
        if not isinstance(schema, dict):
            return
        for sub in schema.get("allOf", []):
            walk(sub)
        for name, prop in schema.get("properties", {}).items():
            if (isinstance(prop, dict) and "fits_hdu" in prop
                    and isinstance(prop.get("datatype"), str)):
                arrays[name] = (prop["fits_hdu"], prop["datatype"], prop.get("ndim"))

    walk(model._schema)
    return arrays


def check_dq_def(hdu):
    problems = []
    if not isinstance(hdu, fits.BinTableHDU):
        return ["DQ_DEF is not a binary table"]
    formats = {c.name: c.format for c in hdu.columns}
    for name, fmt in DQ_DEF_FORMATS.items():
        if name not in formats:
            problems.append(f"DQ_DEF has no {name} column")
        elif parse_tform(formats[name]) != fmt:
            problems.append(f"DQ_DEF column {name} has TFORM {formats[name]}, "
                            f"expected {fmt[0]}{fmt[1]}")
    if problems:
        return problems
    value_col = hdu.columns["VALUE"]
    if value_col.bzero != 2147483648:
        problems.append(f"DQ_DEF column VALUE has TZERO {value_col.bzero}, expected 2147483648 (uint32)")
    data = hdu.data
    if data is not None:
        if data["VALUE"].dtype.kind != "u":
            problems.append(f"DQ_DEF VALUE reads as {data['VALUE'].dtype}, not unsigned")
        for bit, value, name in zip(data["BIT"], data["VALUE"], data["NAME"]):
            if int(value) != 0 and int(value) != 2 ** int(bit):
                problems.append(f"DQ_DEF row {name}: VALUE {value} is not 2**BIT (BIT {bit})")
    return problems


def raw_checks(hdul, model_name):
    """Checks on the file as written, before stdatamodels touches it."""
    problems = []
    primary = hdul[0].header
    if hdul[0].data is not None:
        problems.append("the primary HDU has data; reference files keep it empty")
    for key in STANDARD_KEYS:
        if key not in primary:
            problems.append(f"primary keyword {key} is missing")
    if "TELESCOP" in primary and primary["TELESCOP"] != "JWST":
        problems.append(f"TELESCOP is {primary['TELESCOP']!r}, not 'JWST'")
    if "USEAFTER" in primary:
        p = check_useafter(primary["USEAFTER"])
        if p:
            problems.append(p)
    if "PEDIGREE" in primary:
        p = check_pedigree(primary["PEDIGREE"])
        if p:
            problems.append(p)
    if "DESCRIP" in primary and not str(primary["DESCRIP"]).strip():
        problems.append("DESCRIP is empty")
    if "AUTHOR" in primary and not str(primary["AUTHOR"]).strip():
        problems.append("AUTHOR is empty")
    names = [h.name for h in hdul]
    if model_name:
        for hdu_name, key in type_specific_keys(model_name, primary):
            if hdu_name not in names:
                continue  # reported as a missing extension below
            if key not in hdul[hdu_name].header:
                where = "primary keyword" if hdu_name == "PRIMARY" else f"{hdu_name} keyword"
                problems.append(f"{where} {key} is missing (required for {model_name})")
        for hdu_name in REQUIRED_HDUS.get(model_name, []):
            if hdu_name not in names:
                problems.append(f"extension {hdu_name} is missing (required for {model_name})")
    if "DQ_DEF" in names:
        problems += check_dq_def(hdul["DQ_DEF"])
    return problems


def dtype_checks(hdul, arrays):
    problems = []
    names = [h.name for h in hdul]
    for attr, (hdu_name, datatype, ndim) in arrays.items():
        if hdu_name not in names:
            continue
        hdu = hdul[hdu_name]
        if not isinstance(hdu, fits.ImageHDU):
            problems.append(f"{hdu_name} is not an image extension")
            continue
        data = hdu.data
        if data is None:
            problems.append(f"{hdu_name} has no data")
            continue
        want = np.dtype(datatype)
        if data.dtype.newbyteorder("=") != want.newbyteorder("="):
            problems.append(
                f"{hdu_name} is stored as {data.dtype.newbyteorder('=').name} "
                f"(BITPIX {hdu.header.get('BITPIX')}, BZERO {hdu.header.get('BZERO', 0)}), "
                f"the {attr} schema wants {want.name}")
        if ndim is not None and data.ndim != ndim:
            problems.append(f"{hdu_name} has {data.ndim} dimensions, the {attr} schema wants {ndim}")
    return problems


def stats(hdul):
    out = {"shape": None, "sci_median": None, "sci_finite_fraction": None, "dq_nonzero": None}
    names = [h.name for h in hdul]
    if "SCI" in names and hdul["SCI"].data is not None:
        sci = np.asarray(hdul["SCI"].data, dtype=np.float64)
        out["shape"] = list(sci.shape)
        finite = np.isfinite(sci)
        out["sci_finite_fraction"] = float(finite.mean()) if sci.size else None
        out["sci_median"] = float(np.median(sci[finite])) if finite.any() else None
    if "DQ" in names and hdul["DQ"].data is not None:
        dq = hdul["DQ"].data
        if out["shape"] is None:
            out["shape"] = list(dq.shape)
        out["dq_nonzero"] = int(np.count_nonzero(dq))
    return out


def validate(path):
    result = {"path": path, "model": None, "ok": False, "error": None, "shape": None,
              "sci_median": None, "sci_finite_fraction": None, "dq_nonzero": None}
    problems = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with fits.open(path, checksum=True) as hdul:
                hdul.verify("exception")
                for hdu in hdul:
                    # Read, so that the data sum is verified too.
                    _ = hdu.data
                    for key in ("CHECKSUM", "DATASUM"):
                        if key not in hdu.header:
                            problems.append(f"HDU {hdu.name} has no {key}")
                model_name, mismatch = pick_model(hdul[0].header)
                if mismatch:
                    problems.append(mismatch)
                model_cls = MODELS.get(model_name)
                result["model"] = model_name
                problems += raw_checks(hdul, model_name)
                result.update(stats(hdul))
                if model_cls is not None:
                    arrays = schema_arrays(model_cls())
                    problems += dtype_checks(hdul, arrays)
    except Exception as e:  # noqa: BLE001 - every failure is a finding about the file
        problems.append(f"astropy cannot read it cleanly: {type(e).__name__}: {e}")
        result["error"] = "; ".join(problems)
        return result

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            if model_cls is not None:
                model = model_cls(path, strict_validation=True)
            else:
                model = datamodels.open(path, strict_validation=True)
            with model:
                result["model"] = type(model).__name__
                model.validate()
                arrays = schema_arrays(model)
                primary_name = model.get_primary_array_name()
                with fits.open(path) as hdul:
                    present = {h.name for h in hdul}
                for attr, (hdu_name, datatype, ndim) in arrays.items():
                    required = attr == primary_name
                    if hdu_name not in present and not required:
                        continue
                    if hdu_name not in present:
                        problems.append(f"the primary array {attr} ({hdu_name}) is missing")
                        continue
                    arr = getattr(model, attr)
                    if arr.dtype.newbyteorder("=") != np.dtype(datatype).newbyteorder("="):
                        problems.append(f"{attr} loads as {arr.dtype}, not {datatype}")
                    if ndim is not None and arr.ndim != ndim:
                        problems.append(f"{attr} loads with {arr.ndim} dimensions, not {ndim}")
    except Exception as e:  # noqa: BLE001 - every failure is a finding about the file
        msg = " ".join(str(e).split())
        if len(msg) > 400:
            msg = msg[:400] + "..."
        problems.append(f"stdatamodels rejects it: {type(e).__name__}: {msg}")

    result["ok"] = not problems
    result["error"] = "; ".join(problems) if problems else None
    for key in ("sci_median", "sci_finite_fraction"):
        if result[key] is not None and not math.isfinite(result[key]):
            result[key] = None
    return result


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        return 2
    failed = 0
    for path in argv[1:]:
        result = validate(path)
        failed += not result["ok"]
        print(json.dumps(result), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

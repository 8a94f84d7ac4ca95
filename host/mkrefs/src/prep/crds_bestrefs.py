"""Best reference files from the crds client, for mkrefs' `reffile4ssb.<reftype>: CRDS`.

mkrefs runs this once per plan (`python -c <this text>`, see host/src/crds_client.rs) and
writes one JSON object on stdin:

    {"exposures": [{"exposure": "<path, for messages>",
                    "parameters": {"META.INSTRUMENT.NAME": "NIRCAM", ...},
                    "reftypes": ["superbias", ...]}, ...]}

It answers one JSON object on stdout; everything crds prints goes to stderr:

    {"status": "ok", "crds_version": "...", "context": "jwst_0123.pmap",
     "results": [{"superbias": {"path": "/cache/references/jwst/nircam/x.fits"}
                              | {"na": true} | {"error": "..."}}, ...]}
    {"status": "not_installed", "message": "...", "python": "..."}   crds cannot be imported
    {"status": "failed", "message": "..."}                            crds cannot start

preceded by {"status": "imported"} once `import crds` succeeded, so that mkrefs can tell a
missing crds from one that crashed.

Each reftype is asked for on its own (`crds.getreferences(parameters, reftypes=[reftype],
observatory="jwst")`, as the jwst pipeline asks), so one failing lookup does not hide the
others; the rules are loaded once.
"""

import json
import logging
import sys


def main():
    out = sys.stdout
    sys.stdout = sys.stderr  # crds' own output must not mix with the answer

    def answer(obj):
        out.write(json.dumps(obj))
        out.write("\n")
        out.flush()

    try:
        request = json.load(sys.stdin)
        exposures = request["exposures"]
    except Exception as exc:
        answer({"status": "failed", "message": f"unreadable request from mkrefs: {exc}"})
        return
    try:
        import crds
        from crds.core import heavy_client
    except BaseException as exc:  # ImportError, or crds failing while it is imported
        answer({
            "status": "not_installed",
            "message": f"{type(exc).__name__}: {exc}",
            "python": sys.executable,
        })
        return
    answer({"status": "imported"})  # what went wrong later is crds' failure, not a missing crds

    # crds reports many failures only through its log (log.fatal_error exits with -1), so the
    # last error lines are kept to explain an exception without a message.
    errors = []

    class KeepErrors(logging.Handler):
        def emit(self, record):
            if record.levelno >= logging.ERROR:
                try:
                    errors.append(record.getMessage().strip())
                except Exception:
                    pass

    logging.getLogger("CRDS").addHandler(KeepErrors())

    def explain(exc):
        text = "" if isinstance(exc, SystemExit) else str(exc).strip()
        if errors and (not text or text in errors[-1]):
            text = errors[-1]
        if not text:
            text = type(exc).__name__
        return " ".join(text.split())

    try:
        context = heavy_client.get_context_name("jwst")
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        answer({"status": "failed", "message": explain(exc)})
        return

    results = []
    for exposure in exposures:
        found = {}
        for reftype in exposure["reftypes"]:
            del errors[:]
            try:
                paths = crds.getreferences(
                    exposure["parameters"], reftypes=[reftype], observatory="jwst"
                )
                path = paths.get(reftype)
                if not isinstance(path, str):
                    found[reftype] = {"error": f"crds answered {path!r}"}
                elif "N/A" in path.upper():  # "NOT FOUND n/a", as the jwst pipeline reads it
                    found[reftype] = {"na": True}
                else:
                    found[reftype] = {"path": path}
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                found[reftype] = {"error": explain(exc)}
        results.append(found)
    answer({
        "status": "ok",
        "crds_version": getattr(crds, "__version__", "unknown"),
        "context": context,
        "results": results,
    })


main()

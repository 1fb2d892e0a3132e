#!/bin/sh
# Drops from the image's venv what is never read at run time (the Dockerfile's build stage runs
# it; what each part weighs: README, "Docker"):
# - the dependencies' own test suites (pandas, numpy, graphene, fsspec): never imported;
# - type stubs (*.pyi): read by type checkers only;
# - the UI bundle's source maps (*.js.map): fetched only by a browser's developer tools;
# - the debug sections of compiled extensions (strip --strip-debug; the symbol tables that
#   loading and tracebacks use stay). Files auditwheel edited (an RPATH/RUNPATH) and the
#   libraries it vendored (*.libs/) are left alone: strip is known to corrupt patchelf'd files.
# Every stripped extension is then imported, so a damaged one fails the build, not a run.
set -eu
venv=$1
find "$venv" -depth -type d -name tests -exec rm -rf {} +
find "$venv" -type f \( -name '*.pyi' -o -name '*.js.map' \) -delete
stripped=$(mktemp)
find "$venv" -type f -name '*.so' ! -path '*.libs/*' | while read -r lib; do
  if readelf -d "$lib" | grep -qE '\((RPATH|RUNPATH)\)'; then continue; fi
  strip --strip-debug "$lib"
  echo "$lib" >> "$stripped"
done
xargs -a "$stripped" "$venv/bin/python" -c '
import importlib, pathlib, sys, sysconfig
site = pathlib.Path(sysconfig.get_path("platlib"))
for lib in map(pathlib.Path, sys.argv[1:]):
    rel = lib.relative_to(site)
    importlib.import_module(".".join((*rel.parts[:-1], rel.name.split(".")[0])))
print(f"slim-venv: {len(sys.argv) - 1} extensions stripped, each imports")
'
rm -f "$stripped"

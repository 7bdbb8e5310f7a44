#!/usr/bin/env bash
# What `make <target>` costs on a fresh clone: install wall time, venv size, bytes of wheels pip fetched.
#   bash benchmarks/bench_install.sh REF TARGET PIP_SPEC WORK_DIR
#   e.g. bash benchmarks/bench_install.sh HEAD demo "." /tmp/install_after
# REF: a commit of this repository (cloned, not the working tree); TARGET: demo | test; PIP_SPEC: what that
# target installs (".", ".[test]", ...), given to `pip download` to sum the wheels' sizes.
# A fresh pip cache (PIP_CACHE_DIR inside WORK_DIR) stands in for a fresh machine. Results are printed as
# one JSON line and written to WORK_DIR/install.json.
set -euo pipefail
REF=${1:?commit}
TARGET=${2:?make target}
SPEC=${3:?pip spec}
WORK=${4:?work dir}
REPO=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$WORK"
mkdir -p "$WORK"
git clone -q --no-local "$REPO" "$WORK/repo"
git -C "$WORK/repo" checkout -q "$REF"
export PIP_CACHE_DIR="$WORK/pipcache"
cd "$WORK/repo"
START=$(date +%s.%N)
# The demo's own output goes to WORK/make.log; the install part ends when the venv's stamp file is written.
/usr/bin/time -f "%e" -o "$WORK/make_seconds" make "$TARGET" >"$WORK/make.log" 2>&1
STAMP=$(ls -t .venv/.installed* | head -1)
INSTALL_S=$(python3 -c "import os,sys; print(round(os.path.getmtime('$STAMP') - float('$START'), 1))")
VENV_BYTES=$(du -sb .venv | cut -f1)
PKGS=$(.venv/bin/pip list 2>/dev/null | tail -n +3 | wc -l)
.venv/bin/pip download -q -d "$WORK/wheels" "$SPEC" >"$WORK/download.log" 2>&1
# The project's own sdist/wheel is not a download a user makes.
rm -f "$WORK"/wheels/ms_clip-*
DL_BYTES=$(du -sb "$WORK/wheels" | cut -f1)
python3 - "$WORK" "$REF" "$TARGET" "$SPEC" "$(cat "$WORK/make_seconds")" "$INSTALL_S" "$VENV_BYTES" "$DL_BYTES" "$PKGS" <<'EOF'
import json, os, sys
work, ref, target, spec, make_s, install_s, venv_b, dl_b, pkgs = sys.argv[1:]
out = {"ref": ref, "target": target, "spec": spec, "make_seconds": float(make_s), "install_seconds": float(install_s),
       "venv_mb": round(int(venv_b) / 2**20), "download_mb": round(int(dl_b) / 2**20), "packages": int(pkgs),
       "largest_wheels_mb": sorted(((round(os.path.getsize(os.path.join(work, "wheels", f)) / 2**20), f)
                                    for f in os.listdir(os.path.join(work, "wheels"))), reverse=True)[:8]}
json.dump(out, open(os.path.join(work, "install.json"), "w"), indent=1)
print(json.dumps(out))
EOF

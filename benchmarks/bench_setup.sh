#!/usr/bin/env bash
# Time the README's two set-up commands on a fresh clone in a fresh virtual environment.
#
#   benchmarks/bench_setup.sh [1] [2]        (default: both)
#
# For each command: `git clone` of this checkout's HEAD into a temporary folder (so only what is
# committed counts), a new venv in another temporary folder (`python3 -m venv`), then the README's
# command exactly as written, timed in whole wall-clock seconds. pip's download cache is whatever this machine
# has (the first run on a new machine also pays for downloads). The test command also prints
# pytest's own summary line. The clone sits beside this checkout, so that `../shared` resolves
# as it does for the checkout; it and the venv are deleted afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
WHICH=("$@")
[ ${#WHICH[@]} -eq 0 ] && WHICH=(1 2)
readme_command() {  # the bash line under "**N. ..." in README.md
  python3 - "$1" <<'EOF'
import re, sys
text = open("README.md", encoding="utf-8").read()
n = sys.argv[1]
match = re.search(r"\*\*" + n + r"\. [^\n]*\n+```bash\n(.+?)\n```", text)
if not match:
    sys.exit(f"README.md has no command {n}")
print(match.group(1))
EOF
}
(cd benchmarks && python3 -c "from _common import machine_summary; print(machine_summary())") 2>/dev/null \
  || { python3 -c "import sys; print(sys.version.split()[0])" | sed 's/^/python /'; nproc | sed 's/$/ cores/'; }
clone="" dir=""
trap 'rm -rf "$clone" "$dir"' EXIT
for n in "${WHICH[@]}"; do
  cmd=$(readme_command "$n")
  clone=$(mktemp -d "$(dirname "$REPO")/facetoon-setup-XXXX")
  dir=$(mktemp -d)
  git clone -q "$REPO" "$clone"
  python3 -m venv "$dir/venv"
  echo "command $n: $cmd"
  start=$(date +%s)
  (cd "$clone" && source "$dir/venv/bin/activate" && export PIP_NO_INPUT=1 MPLBACKEND=Agg \
     && bash -c "$cmd" > "$dir/out.log" 2>&1) || { tail -20 "$dir/out.log"; echo "command $n FAILED"; exit 1; }
  end=$(date +%s)
  grep -E "^=+ .*(passed|failed).* in [0-9.]+s" "$dir/out.log" | tail -1 || true
  echo "command $n: $((end - start)) s wall"
  rm -rf "$clone" "$dir"
done

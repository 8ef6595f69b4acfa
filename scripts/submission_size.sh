#!/usr/bin/env bash
# How big this session's submission is, against the workplace's limits (512 MiB packed, 256 MiB of
# diffs added up as text, a file added and later removed counting twice).
#
#   scripts/submission_size.sh BASE      # BASE: the commit the session started from (landed main)
#
# Prints the packed size of BASE..HEAD (as git sends it) and the size of every commit's diff with
# binary files as git's binary patches, summed. A developer tool: run it before committing another
# training state (training/*/state is tens of MB at 256 px) and before the session stops.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${1:?BASE commit (the session start)}
git rev-parse --verify -q "$BASE^{commit}" >/dev/null || { echo "error: not a commit: $BASE" >&2; exit 2; }
packed=$(printf "%s\n^%s\n" HEAD "$BASE" | git pack-objects --revs --thin --stdout -q | wc -c)
diffs=0
for c in $(git rev-list "$BASE..HEAD"); do
  n=$(git show --format= --binary "$c" | wc -c)
  diffs=$((diffs + n))
done
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "commits: $(git rev-list --count "$BASE..HEAD")"
echo "packed:  $(mib "$packed") of 512 MiB"
echo "diffs:   $(mib "$diffs") of 256 MiB"

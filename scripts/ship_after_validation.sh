#!/usr/bin/env bash
# Keep a background face-model run's progress in git while a session may end at any moment.
#
#   scripts/ship_after_validation.sh RUN_DIR LOG_FILE SHIPPED_KID &
#
# Watches LOG_FILE (the trainer's log) for "step N validation" lines. After each one it waits for
# that step's checkpoint and, if the run's best validation (RUN_DIR/checkpoints/best.json) beats
# SHIPPED_KID (the KIDx100 of the weights now in weights/ugatit-selfie2anime), pauses the trainer,
# ships the best validated generator into weights/ and the step's state into training/
# (scripts/ship_weights.py), redraws the KID curve, commits just those files and resumes the
# trainer. After every validation it also exports that step's A->B generator into
# training/ugatit-selfie2anime/snapshots/step_N/ (fp16, ~5 MB) and commits it: the snapshots that
# scripts/average_snapshots.py averages into the shipped weights. A developer tool for this
# project's CPU sessions (see issue 8); it writes no README text.
#
# A session may submit at most 512 MiB packed and 256 MiB of diffs (binary files count too, a
# changed file with its old and new bytes). The compact state in training/ugatit-selfie2anime/state
# is ~27 MB at 128 px and ~67 MB at 256 px (7-layer global critics): committing it after every
# validation is the likely reason an earlier session's submission was too big to land. So this script commits
# the weights (~6 MB), the model card, the histories and the curve, and leaves training/.../state
# untouched (ship_weights.py --no-state, so no state waits uncommitted for a `git commit -a`). The
# session ships and commits the state once, by hand, before it stops:
#   python scripts/ship_weights.py ugatit RUN_DIR --checkpoint LATEST.pt --keep-weights
#   git add -A training/ugatit-selfie2anime weights/ugatit-selfie2anime && git commit -m "..."
#   scripts/submission_size.sh BASE
set -uo pipefail
cd "$(dirname "$0")/.."
RUN=${1:?RUN_DIR} LOG=${2:?LOG_FILE} SHIPPED=${3:?SHIPPED_KID}
T=training/ugatit-selfie2anime
SMALL=(weights/ugatit-selfie2anime "$T/stats.jsonl" "$T/losses_every50.csv" "$T/sessions.jsonl" "$T/config.toml"
       docs/figures/ugatit_kid_curve.png)
seen=$(grep -c "validation:" "$LOG")
trainer=""
# never leave the trainer stopped, however this script ends
trap '[ -n "$trainer" ] && kill -CONT $trainer 2>/dev/null' EXIT
trap 'exit 1' INT TERM HUP
while sleep 30; do
  n=$(grep -c "validation:" "$LOG")
  [ "$n" -le "$seen" ] && continue
  seen=$n
  step=$(grep -o "step [0-9]* validation" "$LOG" | tail -1 | awk '{print $2}')
  ckpt=$(printf "%s/checkpoints/step_%08d.pt" "$RUN" "$step")
  for _ in $(seq 60); do [ -f "$ckpt" ] && break; sleep 10; done
  sleep 20  # best.pt and the step checkpoint are written atomically; let both land
  best=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['value'])" "$RUN/checkpoints/best.json")
  echo "$(date -u +%FT%TZ) step $step validated; best so far $best; shipped $SHIPPED"
  snap=$(printf "%s/snapshots/step_%06d" "$T" "$step")
  tmp=$(mktemp -d)
  if [ ! -d "$snap" ] && facetoon export ugatit "$RUN" "$tmp/export" --checkpoint "$ckpt" --fp16 >/dev/null 2>&1; then
    mkdir -p "$T/snapshots" && mv "$tmp/export/a2b" "$snap" \
      && git add -- "$snap" && git commit -q -m "Face model: generator snapshot of step $step" -- "$snap" \
      && echo "$(date -u +%FT%TZ) snapshot $snap committed"
  fi
  rm -rf "$tmp"
  python3 -c "import sys; sys.exit(float(sys.argv[1]) >= float(sys.argv[2]))" "$best" "$SHIPPED" || continue
  trainer=$(pgrep -f "facetoon train ugatit" || true)  # the console script or python -m facetoon
  [ -n "$trainer" ] && kill -STOP $trainer
  # the best validation is usually this step's: then one export serves the weights and the histories
  best_step=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['step'])" "$RUN/checkpoints/best.json")
  weights_from=(--weights-checkpoint "$RUN/checkpoints/best.pt")
  [ "$best_step" = "$step" ] && weights_from=()
  if python3 scripts/ship_weights.py ugatit "$RUN" --no-state --checkpoint "$ckpt" "${weights_from[@]}" \
      && MPLBACKEND=Agg python3 scripts/make_kid_curve.py \
      ; then
    if git add -A -- "${SMALL[@]}" \
        && git commit -q -m "Face model: weights of the best validation so far (KIDx100 $best), history to step $step" -- "${SMALL[@]}"; then
      SHIPPED=$best
      echo "$(date -u +%FT%TZ) committed"
    fi
  fi
  [ -n "$trainer" ] && kill -CONT $trainer
  trainer=""
done

# Stage timers for scripts/test and .ci/run (sourced): `stage NAME` ends the
# stage before it and starts NAME, printing a `== NAME` line with the time
# since the script began; `stages_summary` prints every stage's duration,
# the table the README's cold and warm timings come from.
_STAGES=()
_STAGE=""
_STAGE_AT=$SECONDS
_STAGES_BEGUN=$SECONDS

stage() {
  local now=$SECONDS
  [ -n "$_STAGE" ] && _STAGES+=("$(printf '%6ss  %s' "$((now - _STAGE_AT))" "$_STAGE")")
  _STAGE="$*"
  _STAGE_AT=$now
  echo "== $* (at $((now - _STAGES_BEGUN))s)"
}

stages_summary() {
  local title=$1
  stage "end"
  echo "== stage timings: $title, $((SECONDS - _STAGES_BEGUN))s in all"
  printf '%s\n' "${_STAGES[@]}"
}

#!/usr/bin/env bash
# expect_output.sh REGEX CMD [ARGS...]: runs CMD and passes only when it exits 0 and its output
# (stdout and stderr) matches REGEX (Perl syntax; '.' also matches newlines). CTest's
# PASS_REGULAR_EXPRESSION ignores the exit status, so output-matching tests run through this.
set -uo pipefail
re="$1"
shift
out="$("$@" 2>&1)"
rc=$?
printf '%s\n' "$out"
if [ $rc -ne 0 ]; then
  echo "expect_output: '$1' exited with status $rc"
  exit 1
fi
if ! printf '%s' "$out" | grep -Pzq -- "(?s)$re"; then
  echo "expect_output: the output does not match: $re"
  exit 1
fi

#!/usr/bin/env bash
# Every C++ source of kiln must compile on its own, not only inside the unity batches that
# tools/test.sh builds: tools/demo.sh (the README's first command) and a plain `cmake` build compile
# file by file, and a unity batch hides a missing #include or a `using namespace` that leaked from
# a neighbouring file. This configures a unity-off tree (BUILD_DIR, default build-standalone),
# generates the schema header, and runs each C++ file's own compile command with -fsyntax-only
# (the CUDA and CPU kernels compile file by file in every build already). About 2 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${BUILD_DIR:-build-standalone}"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_UNITY_BUILD=OFF \
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
cmake --build "$build" --target kiln_schema >/dev/null
python3 - "$build/compile_commands.json" "$(nproc)" <<'EOF'
import concurrent.futures
import json
import shlex
import subprocess
import sys

commands = json.load(open(sys.argv[1]))


def check(entry):
    src = entry["file"]
    if src.endswith((".cu", ".c")) or "/kernels/cpu/" in src or "/kernels/ops/" in src or "/embedded/" in src:
        return None  # (the CPU kernels and ops: never in unity batches; C: the examples, built by test.sh)
    args, skip = [], False
    for a in shlex.split(entry["command"]):
        if skip:
            skip = False
        elif a == "-o":
            skip = True
        else:
            args.append(a)
    r = subprocess.run(args + ["-fsyntax-only"], cwd=entry["directory"], capture_output=True, text=True)
    return src, r.returncode, r.stderr


failed, checked = 0, 0
with concurrent.futures.ThreadPoolExecutor(int(sys.argv[2])) as ex:
    for res in ex.map(check, commands):
        if res is None:
            continue
        checked += 1
        if res[1] != 0:
            failed += 1
            print("check-standalone: %s does not compile on its own:\n%s" % (res[0], res[2][:4000]), file=sys.stderr)
print("check-standalone: %d of %d C++ files compile on their own" % (checked - failed, checked))
if checked < 50:  # (a tree that lists next to nothing checks next to nothing)
    print("check-standalone: only %d C++ files found in %s" % (checked, sys.argv[1]), file=sys.stderr)
    sys.exit(1)
sys.exit(1 if failed else 0)
EOF

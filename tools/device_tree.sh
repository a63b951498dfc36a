#!/usr/bin/env bash
# The device tool sends the tracked tree (plus what `carry` names) and refuses more than 64 MiB;
# kiln's tracked files are over that, mostly real tokenizers and the demo model, which the GPU run
# (tools/device_check.sh) never reads. Before the run, in the checkout the session started in:
#   tools/device_tree.sh slim      untracks them in the index only (nothing on disk changes),
#                                  ignores them locally (.git/info/exclude) and installs a
#                                  pre-commit hook that refuses every commit until restore
#   tools/device_tree.sh restore   puts the index, .git/info/exclude and the hooks back
#   tools/device_tree.sh size      the bytes that would travel, without build-sm90
set -euo pipefail
cd "$(dirname "$0")/.."
paths=(tests/fixtures/real_tokenizers models tests/fixtures/chat_templates)
exclude="$(git rev-parse --git-path info/exclude)"
hook="$(git rev-parse --git-path hooks)/pre-commit"
marker="# tools/device_tree.sh slim"
slimmed() { [ -f "$hook" ] && grep -qxF "$marker" "$hook"; }
case "${1:-}" in
  slim)
    if [ -e "$hook" ] && ! slimmed; then
      echo "device_tree: $hook exists; not slimming (its guard against committing would be lost)" >&2
      exit 1
    fi
    if ! git diff --cached --quiet -- "${paths[@]}"; then
      echo "device_tree: changes to ${paths[*]} are staged; commit or unstage them first" >&2
      exit 1
    fi
    if ! slimmed; then
      mkdir -p "$(dirname "$hook")" "$(dirname "$exclude")"
      printf '#!/bin/sh\n%s\necho "the tree is slimmed for a device run: tools/device_tree.sh restore first" >&2\nexit 1\n' \
        "$marker" > "$hook"
      chmod +x "$hook"
      # own lines, each a whole line even when the file lacks its last newline
      for p in "${paths[@]}"; do echo "/$p/"; done > "$exclude.device_tree"
      { if [ -s "$exclude" ] && [ -n "$(tail -c1 "$exclude")" ]; then echo; fi
        echo "$marker"; cat "$exclude.device_tree"; } >> "$exclude"
    fi
    git rm -r --cached -q --ignore-unmatch "${paths[@]}"
    ;;
  restore)
    git reset -q -- "${paths[@]}"
    if [ -f "$exclude" ] && grep -qxF "$marker" "$exclude"; then
      # drop the marker and the lines slim added right after it, nothing else
      awk -v m="$marker" -v list="$exclude.device_tree" '
        BEGIN { while ((getline l < list) > 0) ours[l] = 1 }
        $0 == m { skip = 1; next }
        skip && ($0 in ours) { delete ours[$0]; next }
        { skip = 0; print }' "$exclude" > "$exclude.tmp"
      mv "$exclude.tmp" "$exclude"
    fi
    rm -f "$exclude.device_tree"
    if slimmed; then rm -f "$hook"; fi
    ;;
  size) ;;
  *)
    echo "usage: tools/device_tree.sh slim|restore|size" >&2
    exit 2
    ;;
esac
git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s 2>/dev/null |
  awk '{ s += $1 } END { printf "tracked and untracked-not-ignored: %.1f MiB (the limit is 64 MiB with build-sm90)\n", s / 1048576 }' || true

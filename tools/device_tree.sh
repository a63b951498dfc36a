#!/usr/bin/env bash
# The device tool sends the tracked tree (plus what `carry` names) and refuses more than 64 MiB;
# kiln's tracked files are over that, mostly real tokenizers and the demo model, which the GPU run
# (tools/device_check.sh) never reads. Before the run, in the checkout the session started in:
#   tools/device_tree.sh slim      untracks them in the index only and ignores them locally
#                                  (.git/info/exclude); nothing on disk changes
#   tools/device_tree.sh restore   puts the index and .git/info/exclude back (before any commit)
#   tools/device_tree.sh size      the bytes that would travel, without build-sm90
set -euo pipefail
cd "$(dirname "$0")/.."
paths=(tests/fixtures/real_tokenizers models tests/fixtures/chat_templates)
exclude="$(git rev-parse --git-path info/exclude)"
marker="# tools/device_tree.sh slim"
case "${1:-}" in
  slim)
    mkdir -p "$(dirname "$exclude")"
    if ! grep -qxF "$marker" "$exclude" 2>/dev/null; then
      { echo "$marker"; for p in "${paths[@]}"; do echo "/$p/"; done; } >> "$exclude"
    fi
    git rm -r --cached -q --ignore-unmatch "${paths[@]}"
    ;;
  restore)
    git reset -q -- "${paths[@]}"
    if [ -f "$exclude" ]; then
      awk -v m="$marker" '$0 == m {skip = 1; next} skip && /^\// {next} {skip = 0; print}' "$exclude" > "$exclude.tmp"
      mv "$exclude.tmp" "$exclude"
    fi
    ;;
  size) ;;
  *)
    echo "usage: tools/device_tree.sh slim|restore|size" >&2
    exit 2
    ;;
esac
git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | awk '{printf "tracked and untracked-not-ignored: %.1f MiB (the limit is 64 MiB with build-sm90)\n", $1 / 1048576}'

#!/usr/bin/env bash
# Normalize every audio file of a folder for a show: loudness to the target, silence trimmed, MP3 out.
# Usage: scripts/normalize_folder.sh IN_DIR OUT_DIR [TARGET_LUFS]
# The inputs are never modified; failures are listed at the end and make the script exit 1.
set -uo pipefail
in_dir=${1:?usage: $0 IN_DIR OUT_DIR [TARGET_LUFS]}
out_dir=${2:?usage: $0 IN_DIR OUT_DIR [TARGET_LUFS]}
target=${3:--16}
media_pub=${MEDIA_PUB_BIN:-media-pub}
mkdir -p "$out_dir"
failed=()
shopt -s nullglob nocaseglob
for f in "$in_dir"/*.{wav,mp3,m4a,flac,ogg,opus,aac,mp4,mov,mkv,webm}; do
  out="$out_dir/$(basename "${f%.*}").mp3"
  echo "== $f"
  "$media_pub" process "$f" "$out" --target "$target" || failed+=("$f")
done
if ((${#failed[@]})); then
  printf 'failed: %s\n' "${failed[@]}" >&2
  exit 1
fi

#!/usr/bin/env bash
# Cut a soundbite clip from an episode file (for social media or a podcast:soundbite), loudness-normalized
# like the show, with `media-pub process`. The clip keeps its exact bounds (no silence trim); the input is
# never modified.
#
# Usage: scripts/soundbite.sh INPUT START DURATION OUTPUT.mp3 [TARGET_LUFS]
#   START     where the clip begins in INPUT: seconds (95.5) or [HH:]MM:SS[.mmm] (00:01:35.500)
#   DURATION  how long it lasts, in the same forms (30 or 00:00:30)
#   TARGET    integrated loudness of the clip, LUFS (default -16; use the show's loudness_target)
# Cut from the published MP3 so that START matches the feed's enclosure (the show may trim silence).
# Prints the CLI's loudness table, then `podcast:soundbite startTime=... duration=...` for the feed.
#
# Env: MEDIA_PUB_BIN  the media-pub command (default: .venv/bin/media-pub of this clone, else media-pub)
# Exit code 0 on success, 1 with one `error: ...` line on stderr otherwise.
set -euo pipefail
usage="usage: $0 INPUT START DURATION OUTPUT.mp3 [TARGET_LUFS]"
if (($# < 4 || $# > 5)); then
  echo "$usage" >&2
  exit 2
fi
input=$1 start=$2 duration=$3 output=$4 target=${5:--16}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -n ${MEDIA_PUB_BIN:-} ]]; then
  media_pub=$MEDIA_PUB_BIN
elif [[ -x $root/.venv/bin/media-pub ]]; then
  media_pub=$root/.venv/bin/media-pub
else
  media_pub=media-pub
fi
if [[ -x $root/.venv/bin/python ]]; then python=$root/.venv/bin/python; else python=python3; fi

# The out point, START + DURATION in seconds, with the parser the CLI and the API use.
bounds=$("$python" - "$start" "$duration" <<'EOF'
import sys

from media_pub.errors import MediaPubError
from media_pub.media.process import parse_timestamp

try:
    start = parse_timestamp(sys.argv[1])
    length = parse_timestamp(sys.argv[2])
except MediaPubError as exc:
    sys.exit(f"error: {exc.detail}")
if length <= 0:
    sys.exit("error: DURATION must be more than 0 seconds")
print(f"{start:.3f} {start + length:.3f} {length:.3f}")
EOF
) || exit 1
read -r start_s end_s length_s <<<"$bounds"

"$media_pub" process "$input" "$output" --start "$start_s" --end "$end_s" --no-trim --target "$target" \
  --title "$(basename "${output%.*}")"
echo "podcast:soundbite startTime=$start_s duration=$length_s"

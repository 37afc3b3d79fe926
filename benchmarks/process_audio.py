"""Speed and memory of `media-pub process` on generated speech-like files of growing length.

Generates deterministic inputs (speech-like stereo 48 kHz with 30 s of silence at each end), runs the pipeline
in a child process per file and prints wall and CPU seconds, times real time, peak RSS, and the output's
loudness measured independently with FFmpeg's ebur128 (through PyAV). Memory must not grow with duration.

    .venv/bin/python benchmarks/process_audio.py --minutes 5 30 60
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import json, resource, sys, time
from pathlib import Path
from media_pub.media.process import ProcessOptions, process_audio
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
t0 = time.monotonic()
r = process_audio(src, dst, ProcessOptions())
print(json.dumps({"wall": time.monotonic() - t0, "duration_in": r.duration_in, "duration_out": r.duration_out,
                  "out": [r.loudness_out.integrated, r.loudness_out.lra, r.loudness_out.true_peak],
                  "in": [r.loudness_in.integrated, r.loudness_in.lra, r.loudness_in.true_peak]}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[5.0, 30.0])
    parser.add_argument("--keep", type=Path, default=None, help="keep generated inputs in this folder")
    args = parser.parse_args()
    from media_pub.media.loudness import measure_loudness
    from media_pub.media.synth import write_speech_like

    work = args.keep or Path(tempfile.mkdtemp(prefix="mp-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    header = (
        f"{'input':>10} {'wall s':>8} {'cpu s':>8} {'x rt':>7} {'peak RSS MB':>12} "
        f"{'in LUFS':>8} {'out LUFS':>9} {'out LRA':>8} {'out dBTP':>9} {'dur in':>8} {'dur out':>8}"
    )
    print(header)
    for minutes in args.minutes:
        src = work / f"speech-{minutes:g}min.wav"
        if not src.exists():
            write_speech_like(src, minutes * 60 - 60, lufs=-24, lead_silence=30, tail_silence=30, seed=11)
        dst = work / f"out-{minutes:g}min.mp3"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(src), str(dst)], capture_output=True, text=True, check=True
        )
        wall = time.monotonic() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        measured = measure_loudness(dst)
        print(
            f"{minutes:>7g}min {wall:>8.1f} {cpu:>8.1f} {result['duration_in'] / wall:>7.1f} "
            f"{after.ru_maxrss / 1024:>12.0f} {result['in'][0]:>8.2f} {measured.integrated:>9.2f} "
            f"{measured.lra:>8.2f} {measured.true_peak:>9.2f} {result['duration_in']:>8.0f} "
            f"{result['duration_out']:>8.0f}",
            flush=True,
        )
    print("peak RSS is the largest child so far (ru_maxrss of children): it must stay flat as duration grows")


if __name__ == "__main__":
    main()

"""Time and peak memory of ``flamesync animate`` against the length of the audio.

    PYTHONPATH=. python benchmarks/scaling.py [--max-minutes 60] [--text-max-minutes 10]
                                              [--formats 16k-mono,44k-stereo] [--paths audio,text]
                                              [--speech realspeech|one-reader]

The audio is real English speech from ../shared/realspeech (or $FLAMESYNC_SHARED_DIR/realspeech;
the clips with transcripts in its MANIFEST.tsv; with ``--speech one-reader``, realtrain's LJ clips,
one reader, the shape of a long take of one speaker), each clip followed by 0.4 s of silence, looped in
order to the length asked for and padded with silence at the end; the transcript is the clips'
transcripts in the same order. Long files are written clip by clip (16-bit WAV, 16 kHz mono or
44.1 kHz stereo with the right channel at half level), so this script never holds them either.

Every measurement is a fresh process, ``python -m flamesync animate clip.wav -o out.npz`` (with
``--text-file`` for the text path), launch to exit: its wall time, times real time, and peak
resident memory (``ru_maxrss`` of that child from ``os.wait4``), and its CPU time (user + system,
from the same call: on a shared machine it depends less on the other jobs than the wall time). Prints one table per path with the
ratios against the 10-minute row: time should grow as the length (time ratio / length ratio near
1) and memory stay flat (memory ratio within 1 +- 0.2).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# The shared folder beside the checkout, or FLAMESYNC_SHARED_DIR (as the tests): a git worktree
# elsewhere has none beside it.
SPEECH = Path(os.environ.get("FLAMESYNC_SHARED_DIR") or REPO.parent / "shared") / "realspeech"
LENGTHS_MIN = (10 / 60, 1.0, 10.0, 30.0, 60.0, 180.0)
FORMATS = {"16k-mono": (16000, 1), "44k-stereo": (44100, 2)}
GAP = 0.4


# Where the looped speech comes from: the shared evaluation clips (19 speakers, read and
# spontaneous, a new voice and level every few seconds), or one reader (realtrain's LJ clips), the
# shape of a long take of one speaker.
SOURCES = {"realspeech": (SPEECH, None), "one-reader": (SPEECH.parent / "realtrain", "ljspeech_part")}


def _clips(source: str = "realspeech") -> list[tuple[np.ndarray, str]]:
    """English clips with transcripts, 16 kHz float32."""
    from flamesync.audio.io import load_audio

    folder, only = SOURCES[source]
    rows = list(csv.DictReader(open(folder / "MANIFEST.tsv", encoding="utf-8"), delimiter="\t"))
    out = []
    for r in rows:
        if r.get("language") != "en" or not r.get("transcript") or (only and r.get("source") != only):
            continue
        out.append((load_audio(folder / r["file"]), r["transcript"].strip()))
    if not out:
        raise SystemExit(f"no English clips with transcripts in {folder}")
    return out


def make_clip(path: Path, seconds: float, rate: int, channels: int, clips) -> str:
    """Write ``seconds`` of looped speech to ``path``; return its transcript."""
    import soundfile as sf
    import soxr

    total = int(round(seconds * 16000))
    gap = np.zeros(int(GAP * 16000), np.float32)
    words = []
    done = 0
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=channels, subtype="PCM_16", format="WAV") as fh:
        def write(x16: np.ndarray) -> None:
            x = x16 if rate == 16000 else soxr.resample(x16, 16000, rate).astype(np.float32)
            fh.write(x if channels == 1 else np.stack([x, 0.5 * x], axis=1))

        k = 0
        misses = 0
        while misses < len(clips):  # the clips in order, skipping any that no longer fit
            wave, text = clips[k % len(clips)]
            k += 1
            piece = np.concatenate([wave, gap])
            if done + len(piece) > total:
                misses += 1
                continue
            misses = 0
            write(piece)
            words.append(text)
            done += len(piece)
        if total > done:
            write(np.zeros(total - done, np.float32))
    return " ".join(words)


def run_cli(args: list[str], *, timeout: float) -> tuple[float, float, float, int, str]:
    """(wall seconds, CPU seconds, peak RSS MB, exit status, last stderr line) of ``python -m flamesync ARGS``."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    err = tempfile.TemporaryFile()
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "flamesync", *args], stdout=subprocess.DEVNULL,
                            stderr=err, env=env)
    deadline = t + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.05)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    err.seek(0)
    lines = err.read().decode(errors="replace").strip().splitlines()
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024.0, proc.returncode, (lines[-1] if lines else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-minutes", type=float, default=180.0, help="longest audio for the audio-only path")
    ap.add_argument("--text-max-minutes", type=float, default=None,
                    help="longest audio for the --text path (default: --max-minutes)")
    ap.add_argument("--formats", default="16k-mono,44k-stereo")
    ap.add_argument("--paths", default="audio,text")
    ap.add_argument("--timeout", type=float, default=7200.0, help="seconds before a run is killed")
    ap.add_argument("--workdir", default=None, help="where the clips go (default: a temporary folder)")
    ap.add_argument("--lengths", default=None,
                    help="comma-separated minutes to run (default: 10 s, 1, 10, 30, 60, 180 up to the maxima)")
    ap.add_argument("--speech", choices=tuple(SOURCES), default="realspeech",
                    help="looped clips: realspeech (many speakers, default) or one-reader (realtrain's LJ clips)")
    a = ap.parse_args()
    text_max = a.max_minutes if a.text_max_minutes is None else a.text_max_minutes
    sys.path.insert(0, str(REPO))
    clips = _clips(a.speech)
    work = Path(a.workdir or tempfile.mkdtemp(prefix="flamesync-scaling-"))
    work.mkdir(parents=True, exist_ok=True)
    formats = [f for f in a.formats.split(",") if f]
    paths = [p for p in a.paths.split(",") if p]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start; "
          f"speech: {a.speech}")
    for path_kind in paths:
        limit = a.max_minutes if path_kind == "audio" else text_max
        print(f"\n## {'audio only' if path_kind == 'audio' else '--text'} (every default layer on)\n")
        print("| format | audio | wall s | CPU s | x real time | peak RSS MB | time ratio / length ratio vs 10 min "
              "| CPU ratio / length ratio | memory ratio vs 10 min | exit |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for fmt in formats:
            rate, channels = FORMATS[fmt]
            base = None
            lengths = [float(m) for m in a.lengths.split(",")] if a.lengths else LENGTHS_MIN
            for minutes in lengths:
                if minutes > limit + 1e-9:
                    continue
                seconds = minutes * 60
                wav = work / f"{a.speech}-{fmt}-{seconds:g}s.wav"
                txt = work / f"{a.speech}-{fmt}-{seconds:g}s.txt"
                if not wav.exists() or not txt.exists():
                    txt.write_text(make_clip(wav, seconds, rate, channels, clips), encoding="utf-8")
                out = work / "out.npz"
                args = ["animate", str(wav), "-o", str(out)]
                if path_kind == "text":
                    args += ["--text-file", str(txt)]
                wall, cpu, rss, rc, last = run_cli(args, timeout=a.timeout)
                out.unlink(missing_ok=True)
                if minutes == 10.0 and rc == 0:
                    base = (wall, rss, seconds, cpu)
                tr = cr = mr = "-"
                if base is not None and minutes >= 10.0:
                    tr = f"{(wall / base[0]) / (seconds / base[2]):.2f}"
                    cr = f"{(cpu / base[3]) / (seconds / base[2]):.2f}"
                    mr = f"{rss / base[1]:.2f}"
                label = f"{seconds:g} s" if seconds < 60 else f"{minutes:g} min"
                note = "" if rc == 0 else f" ({last[:80]})"
                print(f"| {fmt} | {label} | {wall:.1f} | {cpu:.1f} | {seconds / wall:.0f} | {rss:.0f} | {tr} | {cr} | {mr} "
                      f"| {rc}{note} |",
                      flush=True)


if __name__ == "__main__":
    main()

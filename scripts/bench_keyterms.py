#!/usr/bin/env python3
"""Key terms measured: recall of the terms and WER on the other words, each recording streamed
once without and once with its terms (`keyterm=` on our protocol), through a running server.

    scripts/bench_keyterms.py [--url ws://127.0.0.1:8000/v1/listen] [--bin target/release/speech-service]

Builds its phone-band recordings with ffmpeg (300-3400 Hz, 8 kHz mu-law, back to 16 kHz WAV) from
the test recordings in models/recordings. Prints one Markdown table (docs/BENCHMARKS.md, "Key
terms"). Finals do not depend on the pace, so each stream runs as fast as the server takes it.
"""
import argparse
import re
import subprocess
import tempfile
from pathlib import Path

RECORDINGS = Path("models/recordings")
JFK = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


def stm_text(path):
    return " ".join(line.split(maxsplit=5)[5] for line in path.read_text().splitlines() if line.strip())


def phone_band(source, out):
    narrow = out.with_suffix(".mulaw.wav")
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", source, "-af", "highpass=f=300,lowpass=f=3400",
                    "-ar", "8000", "-acodec", "pcm_mulaw", narrow], check=True)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", narrow, "-ar", "16000", "-acodec", "pcm_s16le", out],
                   check=True)
    return out


def words(text):
    return re.findall(r"[a-z0-9']+", text.lower())


def stream(binary, url, wav, terms):
    query = [arg for term in terms for arg in ("--query", f"keyterm={term}")]
    out = subprocess.run([binary, "stream", "--url", url, "--speed", "0", *query, str(wav)],
                         capture_output=True, text=True, check=True).stdout
    finals = [line.split("]", 1)[1] for line in out.splitlines() if line.startswith("FINAL")]
    return " ".join(re.sub(r"^\s*S\d+(\.\d+)?:", "", f).strip() for f in finals)


def wer(binary, reference, hypothesis):
    out = subprocess.run([binary, "eval", "wer", "--reference", reference, "--hypothesis", hypothesis or "-"],
                         capture_output=True, text=True, check=True).stdout
    return float(re.search(r"WER ([0-9.]+)%", out).group(1))


def recall(reference, hypothesis, terms):
    """Occurrences of each term's words in the reference that the hypothesis has too."""
    wanted = [w for term in terms for w in words(term)]
    said = words(hypothesis)
    total = sum(words(reference).count(w) for w in wanted)
    found = sum(min(words(reference).count(w), said.count(w)) for w in wanted)
    return found, total


def without(text, terms):
    drop = {w for term in terms for w in words(term)}
    return " ".join(w for w in words(text) if w not in drop)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="ws://127.0.0.1:8000/v1/listen")
    parser.add_argument("--bin", default="target/release/speech-service")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    call = stm_text(RECORDINGS / "sample.stm")
    cases = [
        ("jfk, phone band", phone_band(RECORDINGS / "jfk.wav", work / "jfk_phone.wav"), JFK, ["Americans"]),
        ("call, wide band", RECORDINGS / "sample.wav", call, ["beep", "Neither"]),
        ("call, phone band", phone_band(RECORDINGS / "sample.wav", work / "call_phone.wav"), call, ["beep", "Neither"]),
        ("call, names already right", RECORDINGS / "sample.wav", call, ["Diane", "Sheila", "Chicago", "Yankee"]),
    ]
    print("| recording | key terms | term recall without / with | WER without / with | WER of the other words without / with |")
    print("|---|---|---|---|---|")
    for name, wav, reference, terms in cases:
        plain, helped = stream(args.bin, args.url, wav, []), stream(args.bin, args.url, wav, terms)
        (f0, total), (f1, _) = recall(reference, plain, terms), recall(reference, helped, terms)
        rest = without(reference, terms)
        print(f"| {name} | {', '.join(terms)} | {f0}/{total} / {f1}/{total} "
              f"| {wer(args.bin, reference, plain):.1f}% / {wer(args.bin, reference, helped):.1f}% "
              f"| {wer(args.bin, rest, without(plain, terms)):.1f}% / {wer(args.bin, rest, without(helped, terms)):.1f}% |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Final latency through each live protocol: our own, Deepgram's (its Python SDK) and OpenAI
Realtime's (its Python SDK, GA form), one stream at a time at real-time pace, on the same
recordings, against a running server. Latency is when the end of an utterance arrived minus the
end of its audio: ours, `utterance_end` against its `end`; Deepgram, the `speech_final` result
against its `start + duration`; OpenAI, an item's `completed` against its
`speech_stopped.audio_end_ms`. Beside it, for ours and Deepgram, every final against its own end.

    target/test-venv/bin/python scripts/bench_vendors.py [HOST:PORT]

Needs the test environment (scripts/test.sh makes it: the SDKs, ffmpeg). Prints a Markdown table
(docs/BENCHMARKS.md, "Through the vendors' protocols").
"""
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import websockets

HOST = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8000"
CLIENTS = Path(__file__).resolve().parent.parent / "tests" / "clients"
PYTHON = sys.executable


def raw(recording, fmt, rate, work):
    out = work / f"{Path(recording).stem}-{rate}.{fmt}"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", recording, "-ac", "1", "-ar", str(rate), "-f", fmt, out],
                   check=True)
    return out


async def ours(pcm):
    """Our protocol, 100 ms frames at real-time pace; (arrival - end) of each utterance's end,
    and of each final."""
    latencies, finals = [], []
    async with websockets.connect(f"ws://{HOST}/v1/listen?sample_rate=16000", max_size=None) as ws:
        started = time.monotonic()

        async def read():
            async for text in ws:
                message = json.loads(text)
                at = time.monotonic() - started
                if message["type"] == "final" and message["text"].strip():
                    finals.append(at - message["end"])
                elif message["type"] == "utterance_end":
                    latencies.append(at - message["end"])

        reader = asyncio.create_task(read())
        chunk = 3200
        for offset in range(0, len(pcm), chunk):
            await ws.send(pcm[offset:offset + chunk])
            await asyncio.sleep(max(0.0, started + (offset + chunk) / 32000 - time.monotonic()))
        await ws.send(json.dumps({"type": "close"}))
        await asyncio.wait_for(reader, 60)
    return latencies, finals


def deepgram(path):
    args = [PYTHON, CLIENTS / "deepgram_client.py", HOST, "key", path, "linear16", "16000", "-"]
    out = json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout)
    finals = [(r["at"] - (m["start"] + m["duration"]), m["speech_final"]) for r in out["received"]
              for m in [r["message"]] if m.get("type") == "Results" and m.get("is_final")
              and m["channel"]["alternatives"][0]["transcript"]]
    return [lat for lat, last in finals if last], [lat for lat, _ in finals]


def openai_realtime(path):
    args = [PYTHON, CLIENTS / "openai_realtime_client.py", f"http://{HOST}/v1", path, "pcm16", "ga"]
    out = json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout)
    stopped, latencies = {}, []
    for r in out["received"]:
        e = r["event"]
        if e["type"] == "input_audio_buffer.speech_stopped":
            stopped[e["item_id"]] = e["audio_end_ms"] / 1000
        elif e["type"] == "conversation.item.input_audio_transcription.completed" and e["item_id"] in stopped:
            latencies.append(r["at"] - stopped[e["item_id"]])
    return latencies, []


def summary(both):
    def figures(latencies):
        if not latencies:
            return "- | - | -"
        ordered = sorted(latencies)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        return f"{len(ordered)} | {statistics.median(ordered):.2f} | {p95:.2f}"

    return f"{figures(both[0])} | {figures(both[1])}"


def main():
    work = Path(tempfile.mkdtemp())
    recordings = Path("models/recordings")
    print("| recording | protocol | utterances | end -> its last final, p50 (s) | p95 (s) | finals | each final, p50 (s) | p95 (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in ["sample.wav", "jfk.wav"]:
        s16 = raw(recordings / name, "s16le", 16000, work)
        s24 = raw(recordings / name, "s16le", 24000, work)
        print(f"| {name} | ours | {summary(asyncio.run(ours(s16.read_bytes())))} |", flush=True)
        print(f"| {name} | Deepgram (Python SDK) | {summary(deepgram(s16))} |", flush=True)
        print(f"| {name} | OpenAI Realtime (Python SDK, GA) | {summary(openai_realtime(s24))} |", flush=True)


if __name__ == "__main__":
    main()

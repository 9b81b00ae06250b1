"""Drives the server with the official `openai` package, unmodified (pinned in scripts/test.sh).

    python openai_client.py BASE_URL AUDIO_FILE [translate]

Prints one JSON object with what each call returned; the Rust test judges it.
"""
import json
import sys

import openai
from openai import OpenAI

base_url, audio = sys.argv[1], sys.argv[2]
client = OpenAI(base_url=base_url, api_key="test-key-without-auth")
out = {"openai_version": openai.__version__}


def create(**kwargs):
    with open(audio, "rb") as f:
        return client.audio.transcriptions.create(model="whisper-1", file=f, **kwargs)


if len(sys.argv) > 3 and sys.argv[3] == "translate":
    with open(audio, "rb") as f:
        out["translation"] = client.audio.translations.create(model="whisper-1", file=f).text
    print(json.dumps(out))
    sys.exit(0)

out["json"] = create().text
out["text"] = create(response_format="text")
out["srt"] = create(response_format="srt")
out["vtt"] = create(response_format="vtt")
verbose = create(response_format="verbose_json", timestamp_granularities=["word", "segment"])
out["verbose"] = {
    "language": verbose.language,
    "duration": verbose.duration,
    "text": verbose.text,
    "segments": [{"start": s.start, "end": s.end, "text": s.text} for s in verbose.segments],
    "words": [{"word": w.word, "start": w.start, "end": w.end} for w in verbose.words],
}
deltas, done = "", None
for event in create(stream=True):
    if event.type == "transcript.text.delta":
        deltas += event.delta
    elif event.type == "transcript.text.done":
        done = event.text
out["stream"] = {"deltas": deltas, "done": done}
try:
    with open(audio, "rb") as f:
        client.audio.transcriptions.create(model="no-such-model", file=f)
    out["error"] = None
except openai.NotFoundError as e:
    out["error"] = {"status": e.status_code, "code": e.code, "message": e.message}
print(json.dumps(out))

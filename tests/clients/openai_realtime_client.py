"""Streams audio to the server with OpenAI's official Python SDK (pinned with its realtime extra in
scripts/test.sh), unmodified, at real-time pace, as a Realtime transcription client does.

    python openai_realtime_client.py BASE_URL AUDIO.raw FORMAT FORM [commit_at_s|-] [manual]

AUDIO.raw holds headerless mono samples: FORMAT pcm16 (16-bit at 24 kHz), pcmu or pcma (8 kHz).
FORM is `ga` (client.realtime.connect, session.update) or `beta` (client.beta.realtime.connect,
transcription_session.update). With commit_at_s, input_audio_buffer.commit is sent after that many
seconds of audio; with `manual`, turn detection is off. The client commits at the end either way.
Prints one JSON object: every event received with the stream time it arrived at.
"""
import asyncio
import base64
import json
import sys
import time

import openai
from openai import AsyncOpenAI

base_url, audio, fmt, form = sys.argv[1:5]
commit_at = float(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[5] != "-" else None
manual = "manual" in sys.argv[6:]
rate, width = (24000, 2) if fmt == "pcm16" else (8000, 1)
bytes_per_second = rate * width
with open(audio, "rb") as f:
    pcm = f.read()
chunk = bytes_per_second // 10
turns = None if manual else {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500}


def ga_session():
    formats = {"pcm16": {"type": "audio/pcm", "rate": 24000}, "pcmu": {"type": "audio/pcmu"}, "pcma": {"type": "audio/pcma"}}
    return {
        "type": "transcription",
        "audio": {
            "input": {
                "format": formats[fmt],
                "transcription": {"model": "gpt-4o-transcribe", "language": "en", "prompt": ""},
                "turn_detection": turns,
                "noise_reduction": {"type": "near_field"},
            }
        },
        "include": ["item.input_audio_transcription.logprobs"],
    }


def beta_session():
    formats = {"pcm16": "pcm16", "pcmu": "g711_ulaw", "pcma": "g711_alaw"}
    return {
        "input_audio_format": formats[fmt],
        "input_audio_transcription": {"model": "gpt-4o-mini-transcribe", "language": "en"},
        "turn_detection": turns,
    }


async def main():
    # The SDK turns base_url into wss://; a plain-HTTP server is named by websocket_base_url.
    websocket_base_url = base_url.replace("http://", "ws://", 1)
    client = AsyncOpenAI(base_url=base_url, websocket_base_url=websocket_base_url, api_key="sk-test")
    if form == "ga":
        connecting = client.realtime.connect(model="gpt-realtime", extra_query={"intent": "transcription"})
    else:
        connecting = client.beta.realtime.connect(model="gpt-4o-transcribe", extra_query={"intent": "transcription"})
    received, started = [], time.monotonic()
    async with connecting as conn:
        if form == "ga":
            await conn.session.update(session=ga_session())
        else:
            await conn.transcription_session.update(session=beta_session())

        last_commit = asyncio.Event()
        last_item_done = asyncio.Event()

        async def read():
            async for event in conn:
                received.append({"at": time.monotonic() - started, "event": event.model_dump()})
                if last_commit.is_set() and event.type.endswith("input_audio_transcription.completed"):
                    last_item_done.set()

        reader = asyncio.create_task(read())
        committed = False
        for offset in range(0, len(pcm), chunk):
            await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[offset : offset + chunk]).decode())
            sent_s = (offset + chunk) / bytes_per_second
            if commit_at is not None and not committed and sent_s >= commit_at:
                await conn.input_audio_buffer.commit()
                received.append({"at": time.monotonic() - started, "event": {"type": "_commit_sent"}})
                committed = True
            await asyncio.sleep(max(0.0, started + sent_s - time.monotonic()))
        # The audio ends mid-utterance, with no pause for turn detection to hear: the client
        # commits what is left, as an app does when its user stops.
        await conn.input_audio_buffer.commit()
        received.append({"at": time.monotonic() - started, "event": {"type": "_commit_sent"}})
        last_commit.set()
        # The last item completes, then the client closes, as an app would.
        try:
            await asyncio.wait_for(last_item_done.wait(), 10)
        except asyncio.TimeoutError:
            pass
        await asyncio.sleep(0.2)
        await conn.close()
        await asyncio.wait_for(reader, 30)
    print(json.dumps({"sdk_version": openai.__version__, "received": received}, default=str))


asyncio.run(main())

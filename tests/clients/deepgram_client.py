"""Streams a WAV file to the server with Deepgram's official Python SDK, unmodified (pinned in
scripts/test.sh), at real-time pace, the way a Deepgram user's code does.

    python deepgram_client.py HOST:PORT API_KEY AUDIO.raw ENCODING RATE [finalize_at_s|-] [query=value ...]

AUDIO.raw holds headerless mono samples in ENCODING (linear16, mulaw or alaw) at RATE Hz.
With finalize_at_s, a Finalize is sent after that many seconds of audio; then the stream ends with
CloseStream. Prints one JSON object: every message received (as the SDK parsed it) with the
stream time it arrived at; the Rust test judges it.
"""
import asyncio
import json
import sys
import time

import deepgram
from deepgram import AsyncDeepgramClient
from deepgram.environment import DeepgramClientEnvironment
from deepgram.listen.v1.types import ListenV1CloseStream, ListenV1Finalize

host, key, audio, encoding, rate = sys.argv[1:6]
rate = int(rate)
finalize_at = float(sys.argv[6]) if len(sys.argv) > 6 and sys.argv[6] != "-" else None
extra = dict(arg.split("=", 1) for arg in sys.argv[7:])

with open(audio, "rb") as f:
    pcm = f.read()
bytes_per_second = rate * (2 if encoding == "linear16" else 1)
chunk = bytes_per_second // 10


async def main():
    environment = DeepgramClientEnvironment(
        base=f"http://{host}", production=f"ws://{host}", agent=f"ws://{host}", agent_rest=f"http://{host}"
    )
    client = AsyncDeepgramClient(api_key=key, environment=environment)
    received, started = [], time.monotonic()
    options = dict(
        model="nova-3",
        encoding=encoding,
        sample_rate=str(rate),
        interim_results="true",
        punctuate="true",
        diarize="true",
        vad_events="true",
        utterance_end_ms="1000",
    )
    options.update(extra)
    keyterms = options.pop("keyterm", None)
    if keyterms:
        options["keyterm"] = keyterms.split("|")
    async with client.listen.v1.connect(**options) as socket:

        async def read():
            async for message in socket:
                at = time.monotonic() - started
                data = message.dict() if hasattr(message, "dict") else message
                received.append({"at": at, "message": data})

        reader = asyncio.create_task(read())
        finalized = False
        for offset in range(0, len(pcm), chunk):
            await socket.send_media(pcm[offset : offset + chunk])
            sent_s = (offset + chunk) / bytes_per_second
            if finalize_at is not None and not finalized and sent_s >= finalize_at:
                await socket.send_finalize(ListenV1Finalize(type="Finalize"))
                received.append({"at": time.monotonic() - started, "message": {"type": "_finalize_sent"}})
                finalized = True
            await asyncio.sleep(max(0.0, started + sent_s - time.monotonic()))
        await socket.send_close_stream(ListenV1CloseStream(type="CloseStream"))
        await asyncio.wait_for(reader, 60)
    print(json.dumps({"sdk_version": deepgram.__version__, "received": received}, default=str))


asyncio.run(main())

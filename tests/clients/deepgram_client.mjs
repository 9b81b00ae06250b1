// Streams raw audio to the server with Deepgram's official JavaScript SDK (@deepgram/sdk,
// pinned in tests/clients/package.json), unmodified, at real-time pace, under node.
//
//     node deepgram_client.mjs HOST:PORT API_KEY AUDIO.raw ENCODING RATE [finalize_at_s|-]
//
// Prints one JSON object: every message received with the stream time it arrived at.
import { readFileSync } from "node:fs";
import { DeepgramClient } from "@deepgram/sdk";

const [host, apiKey, audio, encoding, rateText, finalizeText] = process.argv.slice(2);
const rate = Number(rateText);
const finalizeAt = finalizeText && finalizeText !== "-" ? Number(finalizeText) : null;
const pcm = readFileSync(audio);
const bytesPerSecond = rate * (encoding === "linear16" ? 2 : 1);
const chunk = Math.floor(bytesPerSecond / 10);

const environment = { base: `http://${host}`, production: `ws://${host}`, agent: `ws://${host}`, agentRest: `http://${host}` };
const client = new DeepgramClient({ apiKey, environment });
const connection = await client.listen.v1.connect({
  model: "nova-3",
  encoding,
  sample_rate: String(rate),
  interim_results: "true",
  punctuate: "true",
  diarize: "true",
});
const received = [];
const started = performance.now();
const now = () => (performance.now() - started) / 1000;
const closed = new Promise((resolve) => connection.on("close", resolve));
connection.on("message", (message) => received.push({ at: now(), message }));
connection.on("error", (error) => received.push({ at: now(), message: { type: "_error", error: String(error) } }));
connection.connect();
await connection.waitForOpen();

let finalized = false;
for (let offset = 0; offset < pcm.length; offset += chunk) {
  connection.sendMedia(pcm.subarray(offset, offset + chunk));
  const sent = (offset + chunk) / bytesPerSecond;
  if (finalizeAt !== null && !finalized && sent >= finalizeAt) {
    connection.sendFinalize({ type: "Finalize" });
    received.push({ at: now(), message: { type: "_finalize_sent" } });
    finalized = true;
  }
  const wait = started + sent * 1000 - performance.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
}
connection.sendCloseStream({ type: "CloseStream" });
// The server sends its last results and Metadata, then closes.
await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 60_000))]);
connection.close();
const { version } = JSON.parse(readFileSync(new URL("./node_modules/@deepgram/sdk/package.json", import.meta.url)));
console.log(JSON.stringify({ sdk_version: version, received }));
process.exit(0);

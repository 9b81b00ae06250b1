// The speech-service page: live captions from the microphone over /v1/listen, files through
// the OpenAI-compatible file API, and past sessions through the REST API. Plain JS, no build.

const $ = (id) => document.getElementById(id);
const FINISH_TIMEOUT_MS = 15000;

// ---- API key ---------------------------------------------------------------------------------

const keyInput = $("key");
keyInput.value = sessionStorage.getItem("speech-key") || "";
keyInput.addEventListener("change", () => sessionStorage.setItem("speech-key", keyInput.value.trim()));
const apiKey = () => keyInput.value.trim();
const authHeaders = () => (apiKey() ? { Authorization: `Bearer ${apiKey()}` } : {});

/// A REST call's JSON, or an Error whose message a person can act on.
async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (!response.ok) throw new Error(await describeFailure(response));
  return response;
}

async function describeFailure(response) {
  let detail = "";
  try {
    const body = await response.json();
    detail = body?.error?.message || "";
  } catch (_) {
    /* not JSON */
  }
  switch (response.status) {
    case 401:
      return apiKey() ? "The server refused this API key." : "The server needs an API key: enter it at the top of the page.";
    case 413:
      return `The file is too large for this server. ${detail}`.trim();
    case 503:
      return `The server is busy right now. ${detail}`.trim();
    default:
      return detail || `The server answered ${response.status} ${response.statusText}.`;
  }
}

// ---- Transcript rendering --------------------------------------------------------------------

function formatTime(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}

function speakerClass(speaker) {
  const n = speaker ? parseInt(String(speaker).replace(/\D/g, ""), 10) : NaN;
  return Number.isFinite(n) ? `spk-${((n - 1) % 8) + 1}` : "";
}

function setSpeaker(line, speaker) {
  line.className = line.className.replace(/\bspk-\d+\b/g, "").trim();
  const cls = speakerClass(speaker);
  if (cls) line.classList.add(cls);
  line.dataset.speaker = speaker || "";
  const chip = line.querySelector(".speaker");
  chip.textContent = speaker || "";
  chip.title = speaker ? `Speaker ${speaker.replace(/^S/, "")}` : "Speaker not known yet";
}

/// One settled line: time, speaker chip, text, and (live) the final's latency.
function makeLine({ start, text, speaker, segment, part, latency }) {
  const line = document.createElement("li");
  line.className = "line";
  line.dataset.segment = segment ?? "";
  line.dataset.part = part ?? 0;
  for (const cls of ["time", "speaker", "text", "latency"]) {
    const span = document.createElement("span");
    span.className = cls;
    line.append(span);
  }
  line.querySelector(".time").textContent = formatTime(start);
  line.querySelector(".text").textContent = text;
  if (latency !== undefined) {
    line.querySelector(".latency").textContent = `${latency.toFixed(2)} s`;
    line.querySelector(".latency").title = "From the end of speech to this line";
  }
  setSpeaker(line, speaker);
  if (part > 0) line.classList.add("split");
  return line;
}

function renderSegments(list, segments) {
  list.replaceChildren(
    ...segments
      .filter((s) => (s.text || "").trim())
      .map((s) => makeLine({ start: s.start, text: s.text.trim(), speaker: s.speaker, segment: s.segment_id, part: s.part })),
  );
}

function showAlert(box, message, retry) {
  box.querySelector(".alert-text").textContent = message;
  const button = box.querySelector(".retry");
  if (button) {
    button.hidden = !retry;
    button.onclick = retry || null;
  }
  box.hidden = false;
}

const hideAlert = (box) => (box.hidden = true);

// ---- Downloads -------------------------------------------------------------------------------

const EXTENSIONS = { text: "txt", srt: "srt", vtt: "vtt" };

async function download(sessionId, format) {
  const response = await api(`/sessions/${encodeURIComponent(sessionId)}/transcript?format=${format}`);
  const url = URL.createObjectURL(await response.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = `transcript-${sessionId.slice(0, 8)}.${EXTENSIONS[format]}`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function wireDownloads(container, sessionId, errorBox) {
  for (const button of container.querySelectorAll("button[data-format]")) {
    button.onclick = () => download(sessionId(), button.dataset.format).catch((e) => showAlert(errorBox, e.message));
  }
}

// ---- Live captions ---------------------------------------------------------------------------

const live = {
  socket: null,
  context: null,
  stream: null,
  sessionId: "",
  merged: {},
  sentSeconds: 0,
  sent: [], // [audio seconds sent so far, performance.now()] after each frame
  state: "idle",
  closedResolve: null,
};

const stateLabels = {
  idle: "Not connected",
  connecting: "Connecting…",
  live: "Live",
  finishing: "Finishing…",
  stopped: "Stopped",
  error: "Error",
};

function setState(state) {
  live.state = state;
  const pill = $("state");
  pill.dataset.state = state;
  pill.textContent = stateLabels[state];
  const start = $("start");
  start.textContent = state === "live" ? "Stop" : state === "finishing" ? "Finishing…" : "Start microphone";
  start.disabled = state === "connecting" || state === "finishing";
  start.classList.toggle("primary", state !== "live");
  $("diarize").disabled = state === "live" || state === "connecting" || state === "finishing";
}

function setLevel(level) {
  const value = Math.min(1, level * 4);
  $("level").style.transform = `scaleX(${value})`;
  $("meter").setAttribute("aria-valuenow", String(Math.round(value * 100)));
}

function setPartial(text) {
  const partial = $("partial");
  if (text) partial.textContent = text;
  else partial.replaceChildren();
}

/// Seconds from the moment the audio up to `end` had been sent to now. The server counts the
/// audio in its own samples (resampled to 16 kHz), so a final that ends with the stream (the
/// one a stop flushes) can end a hair past what the page counted as sent: all of it had been
/// sent by the last chunk, and that chunk is its moment.
function latencyOf(end) {
  const entry = live.sent.find(([seconds]) => seconds >= end) ?? live.sent.at(-1);
  return entry ? (performance.now() - entry[1]) / 1000 : undefined;
}

function resolveSpeaker(speaker) {
  let s = speaker;
  for (let i = 0; s && live.merged[s] && i < 32; i++) s = live.merged[s];
  return s;
}

function onFinal(message) {
  setPartial("");
  const text = (message.text || "").trim();
  if (!text) return;
  const line = makeLine({
    start: message.start,
    text,
    speaker: resolveSpeaker(message.speaker),
    segment: message.segment_id,
    part: message.part,
    latency: latencyOf(message.end),
  });
  if (message.part > 0) {
    // All parts of a split segment settle when the segment ends: its latency is the last part's.
    const siblings = $("transcript").querySelectorAll(`.line[data-segment="${message.segment_id}"]`);
    for (const sibling of siblings) {
      if (sibling.dataset.part === "0") sibling.classList.add("split-head");
      sibling.querySelector(".latency").textContent = line.querySelector(".latency").textContent;
    }
    line.title = `Part ${message.part + 1} of segment ${message.segment_id}, split at a change of speaker`;
  }
  $("transcript").append(line);
  line.scrollIntoView({ block: "nearest" });
}

function onSpeakerUpdate(message) {
  Object.assign(live.merged, message.merged || {});
  for (const { segment_id, part, speaker } of message.segments || []) {
    const line = $("transcript").querySelector(`.line[data-segment="${segment_id}"][data-part="${part}"]`);
    if (line) setSpeaker(line, speaker);
  }
  for (const line of $("transcript").querySelectorAll(".line")) {
    const resolved = resolveSpeaker(line.dataset.speaker);
    if (resolved !== line.dataset.speaker) setSpeaker(line, resolved);
  }
}

function onMessage(event) {
  const message = JSON.parse(event.data);
  switch (message.type) {
    case "ready":
      live.sessionId = message.session_id;
      $("session").textContent = message.session_id;
      setState("live");
      break;
    case "partial":
      setPartial(message.text);
      break;
    case "final":
      onFinal(message);
      break;
    case "speaker_update":
      onSpeakerUpdate(message);
      break;
    case "error":
      showAlert($("live-error"), `The server reported: ${message.message}`);
      break;
    case "closed":
      live.closedResolve?.();
      break;
  }
}

async function openMicrophone() {
  try {
    return await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
  } catch (e) {
    const reasons = {
      NotAllowedError: "Microphone access was denied. Allow it for this site in the browser's settings, then try again.",
      NotFoundError: "No microphone was found. Connect one and try again.",
      NotReadableError: "The microphone is in use by another program.",
    };
    throw new Error(reasons[e.name] || `The microphone could not be opened (${e.message}).`);
  }
}

async function startCapture(stream) {
  const context = new AudioContext();
  await context.audioWorklet.addModule("/assets/capture.js");
  const source = context.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(context, "pcm-capture", { numberOfInputs: 1, numberOfOutputs: 1 });
  // Pulled through a silent gain to the output: a worklet nothing listens to may not run.
  const mute = context.createGain();
  mute.gain.value = 0;
  source.connect(node).connect(mute).connect(context.destination);
  node.port.onmessage = ({ data }) => {
    setLevel(data.level);
    if (live.socket?.readyState === WebSocket.OPEN && live.state === "live") {
      live.socket.send(data.pcm);
      live.sentSeconds += data.pcm.byteLength / 2 / context.sampleRate;
      live.sent.push([live.sentSeconds, performance.now()]);
      $("duration").textContent = formatTime(live.sentSeconds);
    }
  };
  await context.resume();
  return context;
}

function socketUrl(sampleRate) {
  const params = new URLSearchParams({ sample_rate: String(sampleRate), encoding: "pcm_s16le" });
  params.set("diarize", $("diarize").checked ? "true" : "false");
  if (apiKey()) params.set("token", apiKey());
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/v1/listen?${params}`;
}

/// Why the socket could not open: browsers hide the refused upgrade's status, so ask REST.
async function diagnoseRefusal() {
  try {
    const auth = await fetch("/sessions?state=active", { headers: authHeaders() });
    if (auth.status === 401) return await describeFailure(auth);
    const ready = await fetch("/health/ready");
    if (ready.status === 503) {
      const body = await ready.json().catch(() => ({}));
      return body.status === "draining"
        ? "The server is shutting down. Try again in a minute."
        : "The server is full: every stream it can serve on time is taken. Try again in a moment.";
    }
  } catch (_) {
    return "The server cannot be reached.";
  }
  return "The connection to the server failed.";
}

async function start() {
  hideAlert($("live-error"));
  setState("connecting");
  Object.assign(live, { sessionId: "", merged: {}, sentSeconds: 0, sent: [] });
  $("transcript").replaceChildren();
  $("downloads").hidden = true;
  $("session").textContent = "";
  setPartial("");
  try {
    live.stream = await openMicrophone();
    live.context = await startCapture(live.stream);
  } catch (e) {
    stopAudio();
    setState("error");
    showAlert($("live-error"), e.message, start);
    return;
  }
  const socket = new WebSocket(socketUrl(live.context.sampleRate));
  socket.binaryType = "arraybuffer";
  live.socket = socket;
  socket.onmessage = onMessage;
  socket.onclose = (event) => onSocketClosed(socket, event);
}

async function onSocketClosed(socket, event) {
  if (live.socket !== socket) return;
  live.socket = null;
  live.closedResolve?.();
  const wasLive = live.state === "live";
  stopAudio();
  if (live.state === "finishing" || event.code === 1000) {
    finished();
    return;
  }
  setState("error");
  let message;
  if (!live.sessionId) message = await diagnoseRefusal();
  else if (event.code === 4001) message = "The session ended after a long silence.";
  else if (event.code === 4002) message = "The session reached the server's length limit.";
  else if (event.code === 1001) message = "The server is shutting down.";
  else if (event.code === 4003) message = "The session was ended on the server.";
  else if (event.code === 1009) message = "The server refused an audio frame as too large.";
  else message = wasLive ? "The connection to the server dropped." : "The connection closed.";
  if (live.sessionId) $("downloads").hidden = false;
  showAlert($("live-error"), message, start);
}

function stopAudio() {
  live.stream?.getTracks().forEach((t) => t.stop());
  live.context?.close().catch(() => {});
  live.stream = null;
  live.context = null;
  setLevel(0);
}

/// Stops cleanly: no more audio, `close`, then wait for `closed` (every final comes first).
async function stop() {
  const socket = live.socket;
  setState("finishing");
  stopAudio();
  if (!socket || socket.readyState !== WebSocket.OPEN) return finished();
  const closed = new Promise((resolve) => (live.closedResolve = resolve));
  socket.send(JSON.stringify({ type: "close" }));
  await Promise.race([closed, new Promise((r) => setTimeout(r, FINISH_TIMEOUT_MS))]);
  live.closedResolve = null;
  socket.close();
  finished();
}

function finished() {
  live.socket = null;
  setPartial("");
  setState("stopped");
  if (live.sessionId) $("downloads").hidden = false;
  loadSessions();
}

$("start").addEventListener("click", () => (live.state === "live" ? stop() : start()));
wireDownloads($("downloads"), () => live.sessionId, $("live-error"));

// ---- Files -----------------------------------------------------------------------------------

/// Reads server-sent events from a fetch response, calling `onEvent` with each parsed `data`.
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block
        .split("\n")
        .filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).trimStart())
        .join("\n");
      if (data) onEvent(JSON.parse(data));
    }
  }
}

async function transcribeFile(file) {
  const status = $("file-status");
  const partial = $("file-partial");
  hideAlert($("file-error"));
  $("file-transcript").replaceChildren();
  partial.textContent = "";
  partial.hidden = false;
  status.textContent = `Transcribing ${file.name}…`;
  const started = performance.now();
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("model", "whisper-1");
  form.append("response_format", "diarized_json");
  form.append("stream", "true");
  try {
    const response = await api("/v1/audio/transcriptions", { method: "POST", body: form });
    const segments = [];
    let failure = null;
    await readEvents(response, (event) => {
      if (event.type === "transcript.text.delta") partial.textContent += event.delta;
      else if (event.type === "transcript.text.segment") segments.push(event);
      else if (event.type === "error") failure = event.error?.message || "the transcription failed";
    });
    if (failure) throw new Error(failure);
    partial.hidden = true;
    renderSegments($("file-transcript"), segments.map((s) => ({ ...s, part: 0 })));
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    status.textContent = segments.length
      ? `${file.name}: ${segments.length} segments in ${seconds} s.`
      : `${file.name}: no speech found.`;
  } catch (e) {
    partial.hidden = true;
    status.textContent = "";
    const message = /not audio|invalid_audio|decode|format/i.test(e.message)
      ? `${file.name} could not be read as audio: ${e.message}`
      : e.message;
    showAlert($("file-error"), message);
  }
}

const drop = $("drop");
const fileInput = $("file");
drop.addEventListener("click", () => fileInput.click());
fileInput.addEventListener("change", () => fileInput.files[0] && transcribeFile(fileInput.files[0]));
for (const type of ["dragenter", "dragover"]) {
  drop.addEventListener(type, (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
}
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  const file = e.dataTransfer?.files?.[0];
  if (file) transcribeFile(file);
});
// A file dropped anywhere else would make the browser navigate away from the page.
window.addEventListener("dragover", (e) => e.preventDefault());
window.addEventListener("drop", (e) => e.preventDefault());

// ---- Past sessions ---------------------------------------------------------------------------

let openSession = "";

function sessionButton(s) {
  const button = document.createElement("button");
  button.type = "button";
  const when = new Date(s.started_at * 1000).toLocaleString();
  const title = document.createElement("span");
  title.textContent = `${when}${s.state === "active" ? " · live now" : ""}`;
  const meta = document.createElement("span");
  meta.className = "meta";
  const speakers = s.speakers?.length ? ` · ${s.speakers.length} speaker${s.speakers.length > 1 ? "s" : ""}` : "";
  meta.textContent = `${formatTime(s.audio_seconds)} of audio · ${s.segments} segments${speakers}`;
  button.append(title, meta);
  button.dataset.session = s.id;
  button.onclick = () => showSession(s.id, when);
  return button;
}

async function loadSessions() {
  hideAlert($("sessions-error"));
  try {
    const { sessions } = await (await api("/sessions?state=all")).json();
    const items = sessions.slice(0, 20).map((s) => {
      const li = document.createElement("li");
      li.append(sessionButton(s));
      return li;
    });
    if (!items.length) {
      const li = document.createElement("li");
      li.className = "hint";
      li.textContent = "No sessions yet.";
      items.push(li);
    }
    $("sessions").replaceChildren(...items);
  } catch (e) {
    showAlert($("sessions-error"), e.message);
  }
}

async function showSession(id, when) {
  try {
    const body = await (await api(`/sessions/${encodeURIComponent(id)}/transcript?format=json`)).json();
    openSession = id;
    $("session-title").textContent = `Session of ${when}`;
    renderSegments($("session-transcript"), body.segments || []);
    $("session-view").hidden = false;
  } catch (e) {
    showAlert($("sessions-error"), e.message);
  }
}

$("refresh").addEventListener("click", loadSessions);
wireDownloads($("session-downloads"), () => openSession, $("sessions-error"));
keyInput.addEventListener("change", loadSessions);
setState("idle");
loadSessions();

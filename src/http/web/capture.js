// AudioWorklet processor: mixes the microphone's channels to mono, converts to 16-bit PCM at the
// context's rate (the server resamples, so no quality is lost here) and posts ~100 ms frames to
// the page with their RMS level. Runs on the audio thread: no allocation but one buffer per frame.
class PcmCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.frameLength = Math.round(sampleRate / 10);
    this.startFrame();
  }

  startFrame() {
    this.frame = new Int16Array(this.frameLength);
    this.filled = 0;
    this.sumSquares = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const n = channels[0].length;
    for (let i = 0; i < n; i++) {
      let v = 0;
      for (const channel of channels) v += channel[i];
      v = Math.max(-1, Math.min(1, v / channels.length));
      this.sumSquares += v * v;
      this.frame[this.filled++] = v < 0 ? v * 0x8000 : v * 0x7fff;
      if (this.filled === this.frameLength) this.flush();
    }
    return true;
  }

  flush() {
    const level = Math.sqrt(this.sumSquares / this.filled);
    this.port.postMessage({ pcm: this.frame.buffer, level }, [this.frame.buffer]);
    this.startFrame();
  }
}

registerProcessor("pcm-capture", PcmCapture);

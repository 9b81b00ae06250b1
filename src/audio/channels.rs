//! Interleaved multichannel samples: kept in whole frames (one sample of every channel), then
//! mixed down to mono or split into one stream per channel (each without the others' echo).

/// Holds back the samples of a frame split across pushes, so that channels never shift.
#[derive(Debug)]
pub struct Deinterleaver {
    channels: usize,
    carry: Vec<f32>,
}

impl Deinterleaver {
    pub fn new(channels: usize) -> Self {
        Self { channels: channels.max(1), carry: Vec::new() }
    }

    /// The whole frames that `samples` (after any carried ones) complete, still interleaved.
    pub fn frames(&mut self, samples: &[f32]) -> Vec<f32> {
        let mut all = std::mem::take(&mut self.carry);
        all.extend_from_slice(samples);
        let whole = all.len() / self.channels * self.channels;
        self.carry = all.split_off(whole);
        all
    }

    /// `samples` mixed down to mono, frame by frame.
    pub fn mixed(&mut self, samples: &[f32]) -> Vec<f32> {
        mix(&self.frames(samples), self.channels)
    }

    /// `samples` split into one vector per channel, each channel's echo of the others
    /// silenced (`gate_crosstalk`, in windows of `window` samples).
    pub fn split_gated(&mut self, samples: &[f32], window: usize) -> Vec<Vec<f32>> {
        let mut channels = split(&self.frames(samples), self.channels);
        gate_crosstalk(&mut channels, window);
        channels
    }

    /// Samples left over that do not make a whole frame; they are dropped.
    pub fn finish(&mut self) -> usize {
        std::mem::take(&mut self.carry).len()
    }
}

/// The mean of every frame's channels.
pub fn mix(frames: &[f32], channels: usize) -> Vec<f32> {
    let channels = channels.max(1);
    frames.chunks_exact(channels).map(|frame| frame.iter().sum::<f32>() / channels as f32).collect()
}

/// One vector of samples per channel.
pub fn split(frames: &[f32], channels: usize) -> Vec<Vec<f32>> {
    let channels = channels.max(1);
    (0..channels).map(|c| frames.iter().skip(c).step_by(channels).copied().collect()).collect()
}

/// How far below the loudest channel a channel's window must be to count as the other
/// party's voice leaking in (echo, crosstalk), not its own speaker: 20 dB, in power.
const CROSSTALK_POWER: f32 = 0.01;

/// The crosstalk gate's window at `rate`: 20 ms, long enough to hold a voice's pitch period.
pub fn crosstalk_window(rate: u32) -> usize {
    (rate / 50) as usize
}

/// Silences, window by window (`window` samples), each channel that is 20 dB or more below the
/// loudest one: on a call recorded one party per channel, what a channel hears of the other
/// party would otherwise be transcribed twice. Where both speak at once, both are kept.
pub fn gate_crosstalk(channels: &mut [Vec<f32>], window: usize) {
    let len = channels.iter().map(Vec::len).min().unwrap_or(0);
    for start in (0..len).step_by(window.max(1)) {
        let range = start..(start + window).min(len);
        let power: Vec<f32> = channels.iter().map(|c| c[range.clone()].iter().map(|s| s * s).sum::<f32>()).collect();
        let loudest = power.iter().copied().fold(0.0, f32::max);
        for (channel, p) in channels.iter_mut().zip(&power) {
            if *p < loudest * CROSSTALK_POWER {
                channel[range.clone()].fill(0.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_split_across_pushes_keeps_its_channels_apart() {
        let mut d = Deinterleaver::new(2);
        assert_eq!(d.frames(&[1.0, -1.0, 0.5]), vec![1.0, -1.0]);
        let frames = d.frames(&[-0.5, 0.25]);
        assert_eq!(split(&frames, 2), vec![vec![0.5], vec![-0.5]]);
        assert_eq!(mix(&frames, 2), vec![0.0]);
        assert_eq!(d.finish(), 1, "a lone sample of a frame is left over");
    }

    #[test]
    fn the_other_partys_echo_is_silenced_but_both_speaking_is_kept() {
        let mut channels = vec![vec![0.5, 0.5, 0.3, 0.3], vec![0.02, 0.02, 0.25, 0.25]];
        gate_crosstalk(&mut channels, 2);
        assert_eq!(channels, vec![vec![0.5, 0.5, 0.3, 0.3], vec![0.0, 0.0, 0.25, 0.25]]);
    }
}

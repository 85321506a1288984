// Session description edits the browser APIs offer no other way to make. No DOM code.

const VIDEO_CODECS = new Set(["VP8", "VP9", "AV1", "H264"]);

/**
 * The description with a starting send bitrate for every video codec, read by
 * Chromium from the remote description (``x-google-start-bitrate``, kbit/s; other
 * browsers ignore it). Without it Chromium starts at 300 kbit/s and, in the motion
 * preset, drops the first frames and starts at a quarter of the picture's width.
 * @param {string} sdp @param {number} kbps
 * @returns {string}
 */
export function withStartBitrate(sdp, kbps) {
  const lines = sdp.split("\r\n");
  /** @type {Set<string>} payload types of video codecs */
  const video = new Set();
  let inVideo = false;
  for (const line of lines) {
    if (line.startsWith("m=")) inVideo = line.startsWith("m=video");
    const rtpmap = inVideo && /^a=rtpmap:(\d+) ([\w-]+)\/90000$/.exec(line);
    if (rtpmap && VIDEO_CODECS.has(rtpmap[2].toUpperCase())) video.add(rtpmap[1]);
  }
  const parameter = `x-google-start-bitrate=${Math.round(kbps)}`;
  const withFmtp = new Set();
  const edited = lines.map((line) => {
    const fmtp = /^a=fmtp:(\d+) (.*)$/.exec(line);
    if (!fmtp || !video.has(fmtp[1])) return line;
    withFmtp.add(fmtp[1]);
    return fmtp[2].includes("x-google-start-bitrate") ? line : `${line};${parameter}`;
  });
  return edited
    .flatMap((line) => {
      const rtpmap = /^a=rtpmap:(\d+) /.exec(line);
      return rtpmap && video.has(rtpmap[1]) && !withFmtp.has(rtpmap[1])
        ? [line, `a=fmtp:${rtpmap[1]} ${parameter}`]
        : [line];
    })
    .join("\r\n");
}

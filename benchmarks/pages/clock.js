// A video source that carries its own clock, and the reader that gets it back.
// Benchmarks only: installed into pages with Playwright's add_init_script.
//
// Every frame paints the wall-clock time (Date.now(), ms) and a frame number as 48 bits,
// then a CRC-8 of them, each bit a BLOCK x BLOCK square, black for 1 and white for 0, in a
// row at the top left; the row below repeats the bits inverted. A reader takes the middle
// of each square and accepts a frame only when the two rows disagree everywhere and the
// CRC matches: a blurred, half-decoded or foreign frame is rejected rather than read
// wrong, and so is one where the encoder moved whole columns of blocks (AV1 did, on
// scrolling text at 300 kbit/s, before the CRC).
(() => {
  const BLOCK = 16;
  const DATA_BITS = 48;
  const BITS = DATA_BITS + 8; // and a CRC-8
  const TIME_BITS = 40; // ms since 2020-01-01: good for 34 years
  const EPOCH = Date.UTC(2020, 0, 1);

  /** CRC-8 (polynomial 0x07) of a 48-bit value's six bytes. @param {bigint} value */
  function crc8(value) {
    let crc = 0;
    for (let byte = 0; byte < DATA_BITS / 8; byte++) {
      crc ^= Number((value >> BigInt(8 * byte)) & 0xffn);
      for (let i = 0; i < 8; i++) crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
    }
    return BigInt(crc);
  }

  /** @param {CanvasRenderingContext2D} ctx @param {number} now @param {number} frame */
  function paint(ctx, now, frame) {
    const data = BigInt(Math.round(now - EPOCH)) | (BigInt(frame & 0xff) << BigInt(TIME_BITS));
    const value = data | (crc8(data) << BigInt(DATA_BITS));
    for (let bit = 0; bit < BITS; bit++) {
      const one = (value >> BigInt(bit)) & 1n;
      ctx.fillStyle = one ? "#000" : "#fff";
      ctx.fillRect(bit * BLOCK, 0, BLOCK, BLOCK);
      ctx.fillStyle = one ? "#fff" : "#000";
      ctx.fillRect(bit * BLOCK, BLOCK, BLOCK, BLOCK);
    }
  }

  /**
   * The time painted in a frame drawn on ``ctx`` at its natural size, or null.
   * @param {CanvasRenderingContext2D} ctx @param {number} scale frame width / 1280
   */
  function read(ctx, scale = 1) {
    const size = Math.max(1, Math.round(BLOCK * scale));
    const strip = ctx.getImageData(0, 0, size * BITS, size * 2).data;
    const width = size * BITS;
    const at = (x, y) => {
      let sum = 0, count = 0;
      const r = Math.max(1, Math.floor(size / 4));
      for (let dy = -r; dy < r; dy++) {
        for (let dx = -r; dx < r; dx++) {
          const i = ((y + dy) * width + (x + dx)) * 4;
          sum += strip[i] + strip[i + 1] + strip[i + 2];
          count += 3;
        }
      }
      return sum / count;
    };
    let value = 0n;
    for (let bit = 0; bit < BITS; bit++) {
      const cx = Math.floor(bit * size + size / 2);
      const top = at(cx, Math.floor(size / 2));
      const bottom = at(cx, Math.floor(size + size / 2));
      const one = top < 128;
      // The inverted row must say the opposite, clearly.
      if (one === bottom < 128 || Math.abs(top - bottom) < 96) return null;
      if (one) value |= 1n << BigInt(bit);
    }
    const data = value & ((1n << BigInt(DATA_BITS)) - 1n);
    if (value >> BigInt(DATA_BITS) !== crc8(data)) return null;
    const time = Number(data & ((1n << BigInt(TIME_BITS)) - 1n)) + EPOCH;
    const frame = Number(data >> BigInt(TIME_BITS));
    return { time, frame };
  }

  /** The text area: x, y, width, height, in a 1280x720 frame; dark on light above,
   * light on dark below. */
  const TEXT_AREA = [16, 48, 640, 424];
  const [TEXT_X, TEXT_Y, TEXT_W, TEXT_H] = TEXT_AREA;
  const TEXT_HALVES = {
    darkOnLight: [TEXT_X, TEXT_Y, TEXT_W, TEXT_H / 2],
    lightOnDark: [TEXT_X, TEXT_Y + TEXT_H / 2, TEXT_W, TEXT_H / 2],
  };
  const LINE = 14;

  /**
   * Small text (11 px), the same for a given frame number, in TEXT_AREA: what the
   * sharpness measure compares the received frame against. With ``scroll`` the lines move
   * up 2 px a frame, as when reading down a page.
   * @param {CanvasRenderingContext2D} ctx @param {number} frame @param {boolean} [scroll]
   */
  function drawText(ctx, frame, scroll = false) {
    // From the frame number as painted (8 bits), so that the reader can draw it again.
    const offset = scroll ? ((frame & 0xff) * 2) % (LINE * 15) : 0;
    for (const [half, [x, y, w, h]] of Object.entries(TEXT_HALVES)) {
      const dark = half === "lightOnDark";
      ctx.save();
      ctx.beginPath();
      ctx.rect(x, y, w, h);
      ctx.clip();
      ctx.fillStyle = dark ? "#1e1e1e" : "#f4f4f0";
      ctx.fillRect(x, y, w, h);
      ctx.fillStyle = dark ? "#e8e8e8" : "#222";
      ctx.font = "11px sans-serif";
      for (let line = 0; line < 32; line++) {
        const number = line + Math.floor(offset / LINE) + (dark ? 15 : 0);
        const top = y + 12 + line * LINE - (offset % LINE);
        ctx.fillText(`${number} The quick brown fox jumps over the lazy dog, 0123456789 ${frame & 0xff}`, x + 8, top);
      }
      ctx.restore();
    }
  }

  /**
   * Grey levels of a region of a canvas.
   * @param {CanvasRenderingContext2D} ctx @param {number[]} area
   */
  function grey(ctx, area) {
    const [x, y, w, h] = area;
    const data = ctx.getImageData(x, y, w, h).data;
    const out = new Float32Array(w * h);
    for (let i = 0; i < out.length; i++) {
      out[i] = 0.299 * data[i * 4] + 0.587 * data[i * 4 + 1] + 0.114 * data[i * 4 + 2];
    }
    return out;
  }

  /**
   * Mean SSIM (8x8 windows, step 4) and PSNR of two grey images of one size.
   * @param {Float32Array} a @param {Float32Array} b @param {number} w @param {number} h
   */
  function compare(a, b, w, h) {
    const C1 = (0.01 * 255) ** 2, C2 = (0.03 * 255) ** 2;
    let total = 0, windows = 0, squared = 0;
    for (let i = 0; i < a.length; i++) squared += (a[i] - b[i]) ** 2;
    for (let y = 0; y + 8 <= h; y += 4) {
      for (let x = 0; x + 8 <= w; x += 4) {
        let ma = 0, mb = 0;
        for (let dy = 0; dy < 8; dy++) for (let dx = 0; dx < 8; dx++) {
          const i = (y + dy) * w + x + dx; ma += a[i]; mb += b[i];
        }
        ma /= 64; mb /= 64;
        let va = 0, vb = 0, cov = 0;
        for (let dy = 0; dy < 8; dy++) for (let dx = 0; dx < 8; dx++) {
          const i = (y + dy) * w + x + dx;
          va += (a[i] - ma) ** 2; vb += (b[i] - mb) ** 2; cov += (a[i] - ma) * (b[i] - mb);
        }
        va /= 63; vb /= 63; cov /= 63;
        total += ((2 * ma * mb + C1) * (2 * cov + C2)) / ((ma * ma + mb * mb + C1) * (va + vb + C2));
        windows += 1;
      }
    }
    const mse = squared / a.length;
    return { ssim: total / windows, psnr: mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse) };
  }

  /**
   * How close the text in a received 1280x720 frame is to what was painted for it:
   * SSIM and PSNR of the whole text area, and the SSIM of each half.
   * @param {CanvasRenderingContext2D} received @param {number} frame @param {boolean} [scroll]
   */
  function sharpness(received, frame, scroll = false) {
    const reference = document.createElement("canvas");
    reference.width = 1280;
    reference.height = 720;
    const ref = /** @type {CanvasRenderingContext2D} */ (reference.getContext("2d", { willReadFrequently: true }));
    drawText(ref, frame, scroll);
    const [, , w, h] = TEXT_AREA;
    const whole = compare(grey(ref, TEXT_AREA), grey(received, TEXT_AREA), w, h);
    const half = (/** @type {number[]} */ area) => compare(grey(ref, area), grey(received, area), area[2], area[3]).ssim;
    return { ...whole, darkOnLight: half(TEXT_HALVES.darkOnLight), lightOnDark: half(TEXT_HALVES.lightOnDark) };
  }

  /**
   * A 1280x720 canvas stream painting the clock, text and something that moves.
   * @param {{fps?: number, width?: number, height?: number, scroll?: boolean}} [options]
   */
  function source(options = {}) {
    const width = options.width ?? 1280;
    const height = options.height ?? 720;
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext("2d"));
    let frame = 0;
    const draw = () => {
      ctx.fillStyle = "#f4f4f0";
      ctx.fillRect(0, 0, width, height);
      drawText(ctx, frame, options.scroll ?? false);
      ctx.fillStyle = "#3a6ea5";
      ctx.fillRect((frame * 8) % width, height - 120, 80, 80);
      paint(ctx, Date.now(), frame);
      frame += 1;
    };
    draw();
    setInterval(draw, 1000 / (options.fps ?? 30));
    return canvas.captureStream(options.fps ?? 30);
  }

  /**
   * Read every rendered frame of ``video``; ``window.clockReadings`` collects
   * ``{latency, frame, at}`` and ``window.clockRejected`` counts unreadable frames.
   * @param {HTMLVideoElement} video @param {{scroll?: boolean}} [options] as the source's
   */
  function watch(video, options = {}) {
    const canvas = document.createElement("canvas");
    const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext("2d", { willReadFrequently: true }));
    window.clockReadings = [];
    window.clockRejected = 0;
    window.clockSharpness = [];
    let read_count = 0;
    const tick = () => {
      const now = Date.now();
      if (video.videoWidth) {
        canvas.width = video.videoWidth;
        canvas.height = video.videoHeight;
        ctx.drawImage(video, 0, 0);
        const got = read(ctx, video.videoWidth / 1280);
        if (got) {
          window.clockReadings.push({ latency: now - got.time, frame: got.frame, at: now });
          // Text sharpness on every 5th frame: the comparison costs some CPU.
          read_count += 1;
          if (read_count % 5 === 0 && video.videoWidth === 1280) {
            window.clockSharpness.push(sharpness(ctx, got.frame, options.scroll ?? false));
          }
        } else {
          window.clockRejected += 1;
        }
      }
      video.requestVideoFrameCallback(tick);
    };
    video.requestVideoFrameCallback(tick);
  }

  window.peerscreenClock = { paint, read, source, watch, drawText, sharpness, BLOCK, BITS };
})();

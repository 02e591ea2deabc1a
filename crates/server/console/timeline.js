// The archive timeline: fragments (from ListFragments) drawn on a canvas, gaps visible, zoom and pan by
// wheel, drag and keyboard. Drawing merges fragments closer than a pixel into one bar and visits only those
// in view (binary search), so a hundred thousand fragments draw in a few milliseconds.
//
// Pointer: click picks a time (onPick), drag pans, shift+drag selects a range (onSelect), wheel zooms.
// Keyboard (the canvas is a focusable slider): ←/→ move the cursor, PageUp/PageDown pan, +/− zoom,
// Home/End jump to the ends, Enter plays from the cursor, [ and ] set the selection's start and end.

const STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400].map((s) => s * 1000);
const pad = (n) => String(n).padStart(2, "0");
export const clock = (ms, seconds = true) => {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}${seconds ? `:${pad(d.getSeconds())}` : ""}`;
};

export class Timeline {
  constructor(canvas, { onPick, onSelect, onView } = {}) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.onPick = onPick || (() => {});
    this.onSelect = onSelect || (() => {});
    this.onView = onView || (() => {});
    this.start = new Float64Array(0);
    this.end = new Float64Array(0);
    this.bounds = [Date.now() - 3600e3, Date.now()];
    this.view = [...this.bounds];
    this.cursor = null;
    this.selection = null;
    this.playhead = null;
    this.lastDraw = { ms: 0, fragments: 0, bars: 0, gaps: 0 };
    this.#listen();
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  // Fragments as sorted start times and lengths (ms); bounds: the loaded range.
  setData(start, length, bounds) {
    this.start = start;
    this.end = new Float64Array(start.length);
    for (let i = 0; i < start.length; i++) this.end[i] = start[i] + length[i];
    this.bounds = bounds;
    this.setView(bounds[0], bounds[1]);
  }

  setView(a, b) {
    const span = Math.max(2000, Math.min(b - a, this.bounds[1] - this.bounds[0]));
    a = Math.max(this.bounds[0], Math.min(a, this.bounds[1] - span));
    this.view = [a, a + span];
    this.draw();
    this.onView(this.view);
  }

  zoom(factor, at = (this.view[0] + this.view[1]) / 2) {
    const [a, b] = this.view;
    this.setView(at - (at - a) * factor, at + (b - at) * factor);
  }

  pan(fraction) {
    const d = (this.view[1] - this.view[0]) * fraction;
    this.setView(this.view[0] + d, this.view[1] + d);
  }

  setCursor(t) {
    this.cursor = Math.max(this.bounds[0], Math.min(this.bounds[1], t));
    if (this.cursor < this.view[0] || this.cursor > this.view[1]) {
      const half = (this.view[1] - this.view[0]) / 2;
      this.setView(this.cursor - half, this.cursor + half);
    } else this.draw();
    this.#aria();
  }

  setPlayhead(t) {
    this.playhead = t;
    this.draw();
  }

  timeAt(clientX) {
    const r = this.canvas.getBoundingClientRect();
    return this.view[0] + ((clientX - r.left) / r.width) * (this.view[1] - this.view[0]);
  }

  // The first fragment that ends at or after t.
  #first(t) {
    let lo = 0, hi = this.start.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.end[mid] < t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  draw() {
    const t0 = performance.now();
    const { canvas, ctx } = this;
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (!w || !h) return;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const [a, b] = this.view;
    const x = (t) => ((t - a) / (b - a)) * w;
    const msPerPx = (b - a) / w;
    const barTop = 6, barH = h - 30;
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, w, h);
    // The track: gaps show as this grey with a red edge mark.
    ctx.fillStyle = "#d8dee4";
    ctx.fillRect(0, barTop, w, barH);
    // Fragments, merged when closer than a pixel (or 250 ms: the jitter between back-to-back fragments).
    const tolerance = Math.max(msPerPx, 250);
    ctx.fillStyle = "#0a58ca";
    let i = this.#first(a), fragments = 0, bars = 0, gaps = 0;
    let runStart = null, runEnd = null;
    const flush = () => {
      const x0 = x(runStart), x1 = Math.max(x(runEnd), x0 + 1);
      ctx.fillRect(x0, barTop, x1 - x0, barH);
      bars++;
    };
    for (; i < this.start.length && this.start[i] <= b; i++) {
      fragments++;
      if (runStart === null) { runStart = this.start[i]; runEnd = this.end[i]; continue; }
      if (this.start[i] - runEnd <= tolerance) { runEnd = Math.max(runEnd, this.end[i]); continue; }
      flush();
      gaps++;
      ctx.save();
      ctx.fillStyle = "#b42318";
      ctx.fillRect(x(runEnd), barTop + barH - 3, Math.max(1, x(this.start[i]) - x(runEnd)), 3);
      ctx.restore();
      runStart = this.start[i];
      runEnd = this.end[i];
    }
    if (runStart !== null) flush();
    // Selection, cursor and playhead.
    if (this.selection) {
      const [s0, s1] = this.selection;
      ctx.fillStyle = "rgba(255, 176, 0, 0.45)";
      ctx.fillRect(x(s0), 0, Math.max(2, x(s1) - x(s0)), barTop + barH);
    }
    const line = (t, color, width) => {
      if (t === null || t < a || t > b) return;
      ctx.fillStyle = color;
      ctx.fillRect(Math.round(x(t)) - width / 2, 0, width, barTop + barH + 4);
    };
    line(this.cursor, "#1f2328", 2);
    line(this.playhead, "#b42318", 2);
    // Axis: about one label per 110 px.
    const step = STEPS.find((s) => s / msPerPx >= 110) || STEPS[STEPS.length - 1];
    const offset = new Date(a).getTimezoneOffset() * 60e3;
    ctx.fillStyle = "#1f2328";
    ctx.font = "12px system-ui, sans-serif";
    ctx.textBaseline = "bottom";
    for (let t = Math.ceil((a - offset) / step) * step + offset; t <= b; t += step) {
      const px = Math.round(x(t));
      ctx.fillRect(px, barTop + barH, 1, 5);
      ctx.fillText(clock(t, step < 60e3), Math.min(px + 3, w - 60), h - 2);
    }
    this.lastDraw = { ms: performance.now() - t0, fragments, bars, gaps };
    this.canvas.dataset.fragmentsDrawn = String(fragments);
  }

  #aria() {
    const c = this.canvas;
    c.setAttribute("aria-valuemin", String(Math.round(this.bounds[0] / 1000)));
    c.setAttribute("aria-valuemax", String(Math.round(this.bounds[1] / 1000)));
    c.setAttribute("aria-valuenow", String(Math.round((this.cursor ?? this.view[0]) / 1000)));
    c.setAttribute("aria-valuetext", this.cursor === null ? "no time picked" : new Date(this.cursor).toLocaleString());
  }

  #listen() {
    const c = this.canvas;
    let down = null;
    c.addEventListener("wheel", (e) => {
      e.preventDefault();
      this.zoom(e.deltaY > 0 ? 1.25 : 0.8, this.timeAt(e.clientX));
    }, { passive: false });
    c.addEventListener("pointerdown", (e) => {
      c.setPointerCapture(e.pointerId);
      down = { x: e.clientX, t: this.timeAt(e.clientX), view: [...this.view], select: e.shiftKey, moved: false };
    });
    c.addEventListener("pointermove", (e) => {
      if (!down) return;
      if (Math.abs(e.clientX - down.x) > 3) down.moved = true;
      if (!down.moved) return;
      if (down.select) {
        const t = this.timeAt(e.clientX);
        this.selection = [Math.min(down.t, t), Math.max(down.t, t)];
        this.draw();
      } else {
        const r = c.getBoundingClientRect();
        const d = ((down.x - e.clientX) / r.width) * (down.view[1] - down.view[0]);
        this.setView(down.view[0] + d, down.view[1] + d);
      }
    });
    c.addEventListener("pointerup", (e) => {
      if (!down) return;
      const { moved, select } = down;
      down = null;
      if (moved && select && this.selection) this.onSelect(this.selection);
      else if (!moved) {
        this.setCursor(this.timeAt(e.clientX));
        this.onPick(this.cursor);
      }
    });
    c.addEventListener("keydown", (e) => {
      const span = this.view[1] - this.view[0];
      const cur = this.cursor ?? (this.view[0] + this.view[1]) / 2;
      const keys = {
        ArrowLeft: () => this.setCursor(cur - span / 50),
        ArrowRight: () => this.setCursor(cur + span / 50),
        PageUp: () => this.pan(-0.5),
        PageDown: () => this.pan(0.5),
        Home: () => this.setCursor(this.bounds[0]),
        End: () => this.setCursor(this.bounds[1]),
        "+": () => this.zoom(0.8, cur),
        "=": () => this.zoom(0.8, cur),
        "-": () => this.zoom(1.25, cur),
        Enter: () => this.onPick(cur),
        "[": () => { this.selection = [cur, Math.max(cur, this.selection?.[1] ?? cur)]; this.draw(); this.onSelect(this.selection); },
        "]": () => { this.selection = [Math.min(cur, this.selection?.[0] ?? cur), cur]; this.draw(); this.onSelect(this.selection); },
      };
      if (keys[e.key]) {
        e.preventDefault();
        keys[e.key]();
      }
    });
  }
}

// flamesync viewer: a head with ARKit morph targets, drawn with WebGL2.
// The morph targets are blended on the CPU (a few hundred thousand multiply-adds per frame), the
// head joint is applied as one-joint linear blend skinning, normals are recomputed, and WebGL2 only
// shades. Take mode samples the take at the audio's clock; live mode draws the newest WebSocket frame.
"use strict";

(async function main() {
  const statusEl = document.getElementById("status");
  const status = (text) => { statusEl.textContent = text; };
  const state = window.flamesync = {
    ready: false, mode: null, time: 0, frame: -1, weights: null, head: [0, 0, 0], channels: [],
    liveFrames: 0, lastMessage: null, error: null,
  };
  function fail(message) { state.error = message; status(message); }

  let cfg, meta, blob;
  try {
    cfg = await (await fetch("config.json")).json();
    meta = await (await fetch("head.json")).json();
    blob = await (await fetch("head.bin")).arrayBuffer();
  } catch (e) { return fail("could not load the head: " + e); }
  state.mode = cfg.mode;
  state.channels = meta.channels;
  const view = (name, Type) => new Type(blob, meta.layout[name][0], meta.layout[name][1]);
  const template = view("template", Float32Array), deltas = view("deltas", Float32Array);
  const headW = view("head_weights", Float32Array), colors = view("colors", Float32Array);
  const faces = view("faces", Uint32Array);
  const V = meta.vertices, K = meta.channels.length;
  const pivot = meta.head_pivot || [0, 0, 0];
  const weights = new Float32Array(K);
  state.weights = weights;

  // ---------------------------------------------------------------- WebGL2
  const canvas = document.getElementById("view");
  const gl = canvas.getContext("webgl2", { antialias: true, preserveDrawingBuffer: true });
  if (!gl) return fail("this browser has no WebGL2");
  const VS = `#version 300 es
    in vec3 aPos; in vec3 aNormal; in vec3 aColor;
    uniform mat4 uProj, uView;
    out vec3 vNormal; out vec3 vColor; out vec3 vPos;
    void main() {
      vec4 p = uView * vec4(aPos, 1.0);
      vPos = p.xyz; vNormal = mat3(uView) * aNormal; vColor = aColor;
      gl_Position = uProj * p;
    }`;
  const FS = `#version 300 es
    precision highp float;
    in vec3 vNormal; in vec3 vColor; in vec3 vPos;
    out vec4 outColor;
    void main() {
      vec3 n = normalize(vNormal);
      if (!gl_FrontFacing) n = -n;
      vec3 key = normalize(vec3(0.4, 0.5, 1.0)), fill = normalize(vec3(-0.6, 0.1, 0.6));
      float d = 0.25 + 0.65 * max(dot(n, key), 0.0) + 0.25 * max(dot(n, fill), 0.0);
      vec3 h = normalize(key + normalize(-vPos));
      float s = 0.12 * pow(max(dot(n, h), 0.0), 24.0);
      vec3 c = vColor * d + s;
      outColor = vec4(pow(c, vec3(1.0 / 2.2)), 1.0);
    }`;
  function shader(type, src) {
    const s = gl.createShader(type);
    gl.shaderSource(s, src); gl.compileShader(s);
    if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
    return s;
  }
  const prog = gl.createProgram();
  try {
    gl.attachShader(prog, shader(gl.VERTEX_SHADER, VS));
    gl.attachShader(prog, shader(gl.FRAGMENT_SHADER, FS));
  } catch (e) { return fail("shader error: " + e.message); }
  gl.linkProgram(prog);
  gl.useProgram(prog);
  const vao = gl.createVertexArray();
  gl.bindVertexArray(vao);
  function attrib(name, data, usage) {
    const buf = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, buf);
    gl.bufferData(gl.ARRAY_BUFFER, data, usage);
    const loc = gl.getAttribLocation(prog, name);
    gl.enableVertexAttribArray(loc);
    gl.vertexAttribPointer(loc, 3, gl.FLOAT, false, 0, 0);
    return buf;
  }
  const pos = new Float32Array(V * 3), nrm = new Float32Array(V * 3);
  const posBuf = attrib("aPos", pos, gl.DYNAMIC_DRAW);
  const nrmBuf = attrib("aNormal", nrm, gl.DYNAMIC_DRAW);
  attrib("aColor", colors, gl.STATIC_DRAW);
  const ibo = gl.createBuffer();
  gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, ibo);
  gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, faces, gl.STATIC_DRAW);
  gl.enable(gl.DEPTH_TEST);

  // Camera: framed on the neutral head, looking at the face (+z out of the face, y up).
  const lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
  for (let i = 0; i < V; i++) for (let a = 0; a < 3; a++) {
    lo[a] = Math.min(lo[a], template[3 * i + a]); hi[a] = Math.max(hi[a], template[3 * i + a]);
  }
  const center = [0, 1, 2].map((a) => (lo[a] + hi[a]) / 2);
  const radius = Math.hypot(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]) / 2;
  let yaw = 0.35, pitch = 0.05;
  const fov = 30 * Math.PI / 180, dist = radius / Math.sin(fov / 2) * 0.95;
  function matrices() {
    const aspect = canvas.width / canvas.height, f = 1 / Math.tan(fov / 2), n = dist / 10, fa = dist * 10;
    const proj = [f / aspect, 0, 0, 0, 0, f, 0, 0, 0, 0, (fa + n) / (n - fa), -1, 0, 0, 2 * fa * n / (n - fa), 0];
    const cy = Math.cos(yaw), sy = Math.sin(yaw), cp = Math.cos(pitch), sp = Math.sin(pitch);
    // view = translate(0,0,-dist) * rotX(pitch) * rotY(-yaw) * translate(-center); column-major
    const r = [cy, sp * sy, -cp * sy, 0, 0, cp, sp, 0, sy, -sp * cy, cp * cy, 0];
    const R = [[r[0], r[4], r[8]], [r[1], r[5], r[9]], [r[2], r[6], r[10]]];
    const t = [0, 1, 2].map((i) => -(R[i][0] * center[0] + R[i][1] * center[1] + R[i][2] * center[2]));
    const viewM = [R[0][0], R[1][0], R[2][0], 0, R[0][1], R[1][1], R[2][1], 0, R[0][2], R[1][2], R[2][2], 0,
      t[0], t[1], t[2] - dist, 1];
    gl.uniformMatrix4fv(gl.getUniformLocation(prog, "uProj"), false, new Float32Array(proj));
    gl.uniformMatrix4fv(gl.getUniformLocation(prog, "uView"), false, new Float32Array(viewM));
  }
  let drag = null;
  canvas.addEventListener("pointerdown", (e) => { drag = [e.clientX, e.clientY, yaw, pitch]; canvas.setPointerCapture(e.pointerId); });
  canvas.addEventListener("pointerup", () => { drag = null; });
  canvas.addEventListener("pointermove", (e) => {
    if (!drag) return;
    yaw = drag[2] + (e.clientX - drag[0]) * 0.01;
    pitch = Math.max(-1.2, Math.min(1.2, drag[3] + (e.clientY - drag[1]) * 0.01));
    dirty = true;
  });

  // ---------------------------------------------------------------- posing
  function pose(w, head) {
    pos.set(template);
    const n = V * 3;
    for (let k = 0; k < K; k++) {
      const wk = w[k];
      if (wk > -1e-5 && wk < 1e-5) continue;
      const base = k * n;
      for (let i = 0; i < n; i++) pos[i] += wk * deltas[base + i];
    }
    const angle = Math.hypot(head[0], head[1], head[2]);
    if (angle > 1e-7) {
      // Rodrigues rotation about the head joint, blended per vertex by its skin weight.
      const ax = head[0] / angle, ay = head[1] / angle, az = head[2] / angle;
      const c = Math.cos(angle), s = Math.sin(angle), C = 1 - c;
      const m = [c + ax * ax * C, ax * ay * C - az * s, ax * az * C + ay * s,
        ay * ax * C + az * s, c + ay * ay * C, ay * az * C - ax * s,
        az * ax * C - ay * s, az * ay * C + ax * s, c + az * az * C];
      for (let v = 0; v < V; v++) {
        const hw = headW[v];
        if (hw === 0) continue;
        const i = 3 * v, x = pos[i] - pivot[0], y = pos[i + 1] - pivot[1], z = pos[i + 2] - pivot[2];
        pos[i] += hw * (m[0] * x + m[1] * y + m[2] * z + pivot[0] - pos[i]);
        pos[i + 1] += hw * (m[3] * x + m[4] * y + m[5] * z + pivot[1] - pos[i + 1]);
        pos[i + 2] += hw * (m[6] * x + m[7] * y + m[8] * z + pivot[2] - pos[i + 2]);
      }
    }
    nrm.fill(0);
    for (let f = 0; f < faces.length; f += 3) {
      const a = 3 * faces[f], b = 3 * faces[f + 1], c2 = 3 * faces[f + 2];
      const ux = pos[b] - pos[a], uy = pos[b + 1] - pos[a + 1], uz = pos[b + 2] - pos[a + 2];
      const vx = pos[c2] - pos[a], vy = pos[c2 + 1] - pos[a + 1], vz = pos[c2 + 2] - pos[a + 2];
      const nx = uy * vz - uz * vy, ny = uz * vx - ux * vz, nz = ux * vy - uy * vx;
      for (const j of [a, b, c2]) { nrm[j] += nx; nrm[j + 1] += ny; nrm[j + 2] += nz; }
    }
    gl.bindBuffer(gl.ARRAY_BUFFER, posBuf); gl.bufferSubData(gl.ARRAY_BUFFER, 0, pos);
    gl.bindBuffer(gl.ARRAY_BUFFER, nrmBuf); gl.bufferSubData(gl.ARRAY_BUFFER, 0, nrm);
  }
  function draw() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.round(canvas.clientWidth * dpr), h = Math.round(canvas.clientHeight * dpr);
    if (w > 0 && h > 0 && (canvas.width !== w || canvas.height !== h)) { canvas.width = w; canvas.height = h; }
    gl.viewport(0, 0, canvas.width, canvas.height);
    gl.clearColor(0.118, 0.129, 0.153, 1);
    gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
    matrices();
    gl.drawElements(gl.TRIANGLES, faces.length, gl.UNSIGNED_INT, 0);
  }
  let dirty = true;

  // ---------------------------------------------------------------- take mode
  const playBtn = document.getElementById("play"), scrub = document.getElementById("scrub");
  const clockEl = document.getElementById("clock"), audio = document.getElementById("audio");
  let take = null, playing = false, clockStart = 0, clockT0 = 0, manualT = 0;

  function sampleTake(t) {
    // Linear between frames; frame j sits at audio_offset + j / fps.
    const x = Math.min(Math.max((t - take.audio_offset) * take.fps, 0), take.n_frames - 1);
    const j0 = Math.floor(x), j1 = Math.min(j0 + 1, take.n_frames - 1), a = x - j0;
    for (let k = 0; k < K; k++) weights[k] = (1 - a) * take.weights[j0 * K + k] + a * take.weights[j1 * K + k];
    for (let i = 0; i < 3; i++) state.head[i] = (1 - a) * take.head[j0 * 3 + i] + a * take.head[j1 * 3 + i];
    state.frame = Math.round(x);
  }
  function takeTime() {
    if (cfg.has_audio) return audio.currentTime;
    return playing ? clockT0 + (performance.now() - clockStart) / 1000 : manualT;
  }
  function seek(t) {
    t = Math.min(Math.max(t, 0), take.duration);
    if (cfg.has_audio) audio.currentTime = t;
    manualT = t; clockT0 = t; clockStart = performance.now();
    state.time = t; sampleTake(t); dirty = true;
    scrub.value = String(t);
    return t;
  }
  function setPlaying(on) {
    playing = on;
    playBtn.textContent = on ? "Pause" : "Play";
    if (cfg.has_audio) { if (on) audio.play().catch(() => setPlaying(false)); else audio.pause(); }
    else { clockT0 = manualT; clockStart = performance.now(); }
  }
  state.seek = (t) => seek(t);
  state.play = () => setPlaying(true);
  state.pause = () => setPlaying(false);

  if (cfg.mode === "take") {
    try { take = await (await fetch("take.json")).json(); } catch (e) { return fail("could not load the take: " + e); }
    if (take.channels.join() !== meta.channels.join()) return fail("the take's channels do not match the head");
    state.take = { fps: take.fps, n_frames: take.n_frames, duration: take.duration };
    scrub.max = String(take.duration);
    scrub.disabled = false; playBtn.disabled = false;
    if (cfg.has_audio) {
      audio.src = "audio";
      audio.addEventListener("ended", () => setPlaying(false));
    }
    scrub.addEventListener("input", () => { seek(parseFloat(scrub.value)); });
    playBtn.addEventListener("click", () => setPlaying(!playing));
    seek(0);
    status(`${take.n_frames} frames at ${take.fps} fps` + (cfg.has_audio ? ", with audio" : ""));
  } else {
    // ---------------------------------------------------------------- live mode
    const index = new Map(meta.channels.map((c, i) => [c, i]));
    const connect = () => {
      const ws = new WebSocket(`ws://${location.hostname}:${cfg.ws_port}/`);
      ws.onopen = () => status("live: connected");
      ws.onmessage = (ev) => {
        const m = JSON.parse(ev.data);
        weights.fill(0);
        for (const [name, v] of Object.entries(m.weights)) { const k = index.get(name); if (k !== undefined) weights[k] = v; }
        state.head = m.head;
        state.time = m.t; state.frame = m.frame; state.liveFrames += 1; state.lastMessage = m;
        dirty = true;
      };
      ws.onclose = () => { status(`live: disconnected after ${state.liveFrames} frames; retrying`); setTimeout(connect, 1000); };
    };
    connect();
  }

  function tick() {
    if (take) {
      const t = takeTime();
      if (playing || cfg.has_audio && !audio.paused) {
        if (!cfg.has_audio && t >= take.duration) { manualT = take.duration; setPlaying(false); }
        state.time = Math.min(t, take.duration); sampleTake(state.time); dirty = true;
        scrub.value = String(state.time);
      }
    }
    if (dirty) {
      pose(weights, state.head);
      draw();
      dirty = false;
      state.rendered = (state.rendered || 0) + 1;
      clockEl.textContent = state.time.toFixed(2) + " s";
    }
    requestAnimationFrame(tick);
  }
  state.ready = true;
  requestAnimationFrame(tick);
})();

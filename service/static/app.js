// The matting page: plain JavaScript over the public API, no build step.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const KEY_STORE = 'matting.apiKey'; // sessionStorage only: gone when the tab closes

  // ---------------------------------------------------------------- API access

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  const apiKey = () => sessionStorage.getItem(KEY_STORE) || '';

  function withKey(headers = {}) {
    const key = apiKey();
    return key ? { ...headers, Authorization: `Bearer ${key}` } : headers;
  }

  // fetch() with the key; answers the response when ok, else throws an ApiError
  // with the service's own message ({"error": {"type", "message"}}).
  async function request(path, options = {}) {
    let res;
    try {
      res = await fetch(path, { ...options, headers: withKey(options.headers) });
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      throw new ApiError(0, 'cannot reach the server');
    }
    if (res.ok) return res;
    let message = `${res.status} ${res.statusText}`.trim();
    try {
      const body = await res.json();
      if (body && body.error && body.error.message) message = body.error.message;
    } catch (_) { /* not JSON: keep the status line */ }
    if (res.status === 401) askForKey(apiKey() ? `The key was refused: ${message}.` : '');
    throw new ApiError(res.status, message);
  }

  function setStatus(el, text, isError = false) {
    el.textContent = text;
    el.classList.toggle('error', isError);
  }

  function failure(prefix, e) {
    return e.status ? `${prefix}: ${e.message} (${e.status}).` : `${prefix}: ${e.message}.`;
  }

  // ---------------------------------------------------------------- API key

  const auth = {
    section: $('auth'), form: $('auth-form'), input: $('api-key'), status: $('auth-status'),
  };

  function askForKey(message) {
    auth.section.hidden = false;
    auth.form.hidden = false;
    $('forget-key').hidden = !apiKey();
    setStatus(auth.status, message || 'Enter the API key to use this service.', Boolean(message));
    auth.section.scrollIntoView({ block: 'nearest' });
    auth.input.focus();
  }

  // Finds out whether auth is on (the schema is behind the key then) and which
  // routes the server has. Answers true when the API can be used.
  async function probe() {
    try {
      const doc = await (await request('/openapi.json')).json();
      const paths = Object.keys(doc.paths || {});
      setVideoAvailable(paths.some((p) => p.startsWith('/v1/videos')));
      if (apiKey()) {
        auth.section.hidden = false;
        auth.form.hidden = true;
        $('forget-key').hidden = false;
        setStatus(auth.status, 'Key accepted. It is kept for this tab only.');
      } else {
        auth.section.hidden = true;
      }
      return true;
    } catch (e) {
      if (e.status === 401) return false; // request() has shown the key form
      // No schema to read: offer everything and let the requests say what is wrong.
      setVideoAvailable(true);
      if (e.status) return true;
      setStatus(auth.status, failure('Could not check the key', e), true);
      return false;
    }
  }

  auth.form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const key = auth.input.value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_STORE, key);
    setStatus(auth.status, 'Checking the key…');
    if (!(await probe())) {
      sessionStorage.removeItem(KEY_STORE);
      $('forget-key').hidden = true;
      auth.input.select();
    } else {
      auth.input.value = '';
    }
  });

  $('forget-key').addEventListener('click', () => {
    sessionStorage.removeItem(KEY_STORE);
    auth.input.value = '';
    probe();
  });

  // ---------------------------------------------------------------- files

  // Drop zones: a <label> around a file input, so a click, Enter or Space opens
  // the picker and a dropped file goes the same way.
  function dropZone(zone, onFile) {
    const input = zone.querySelector('input[type=file]');
    input.addEventListener('change', () => input.files[0] && onFile(input.files[0]));
    zone.addEventListener('dragover', (e) => {
      e.preventDefault();
      zone.classList.add('over');
    });
    zone.addEventListener('dragleave', () => zone.classList.remove('over'));
    zone.addEventListener('drop', (e) => {
      e.preventDefault();
      zone.classList.remove('over');
      const file = e.dataTransfer && e.dataTransfer.files[0];
      if (file) onFile(file);
    });
  }
  // A file dropped next to a zone must not replace the page.
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => e.preventDefault());

  function download(url, name) {
    const a = document.createElement('a');
    a.href = url;
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
  }

  const stem = (name) => (name || 'image').replace(/\.[^.]*$/, '') || 'image';

  // ---------------------------------------------------------------- image

  const im = {
    section: $('image'), status: $('image-status'), stage: $('stage'),
    before: $('before-canvas'), after: $('after-canvas'), alpha: $('alpha-canvas'),
    split: $('split'), splitOut: $('split-out'), splitRow: $('split-row'),
    controls: $('image-controls'), bgColor: $('bg-color'), bgFile: $('bg-file'),
    format: $('format'), download: $('download'),
    cutout: document.createElement('canvas'), // the RGBA answer, as the API gave it
    bgImage: null,
    name: '',
    busy: 0,
  };

  const exact = { premultiplyAlpha: 'none', colorSpaceConversion: 'none' };
  const radio = (name) => document.querySelector(`input[name=${name}]:checked`).value;

  async function matteImage(file) {
    const busy = ++im.busy; // a newer pick wins over an older one still running
    im.section.dataset.state = 'working';
    setStatus(im.status, `Cutting out ${file.name}…`);
    try {
      const type = /^image\/(jpeg|png|webp)$/.test(file.type) ? file.type : 'application/octet-stream';
      const res = await request('/v1/matte?output=rgba&format=png', {
        method: 'POST', body: file, headers: { 'Content-Type': type },
      });
      const [cut, original] = await Promise.all([
        createImageBitmap(await res.blob(), exact),
        createImageBitmap(file, exact),
      ]);
      if (busy !== im.busy) return;
      showImage(cut, original);
      im.name = stem(file.name);
      im.section.dataset.state = 'done';
      setStatus(im.status, `Done: ${cut.width} × ${cut.height}.`);
    } catch (e) {
      if (busy !== im.busy) return;
      im.section.dataset.state = 'error';
      setStatus(im.status, failure(`Could not cut out ${file.name}`, e), true);
    }
  }

  function showImage(cut, original) {
    const { width: w, height: h } = cut;
    for (const c of [im.before, im.after, im.alpha, im.cutout]) {
      c.width = w;
      c.height = h;
    }
    im.before.getContext('2d').drawImage(original, 0, 0, w, h);
    const cctx = im.cutout.getContext('2d', { willReadFrequently: true });
    cctx.drawImage(cut, 0, 0);
    // The alpha view: the matte as grey, read from the answer's alpha channel.
    const px = cctx.getImageData(0, 0, w, h);
    const grey = new ImageData(w, h);
    for (let i = 0; i < px.data.length; i += 4) {
      const a = px.data[i + 3];
      grey.data[i] = a;
      grey.data[i + 1] = a;
      grey.data[i + 2] = a;
      grey.data[i + 3] = 255;
    }
    im.alpha.getContext('2d').putImageData(grey, 0, 0);
    im.stage.style.setProperty('--ratio', String(w / h));
    im.stage.hidden = false;
    im.controls.hidden = false;
    $('image-layout').classList.remove('single');
    $('image-drop').classList.add('compact');
    render();
    setView();
  }

  // The "after" side: the background, then the cut-out over it. This canvas is
  // also what the download saves.
  function render() {
    const { width: w, height: h } = im.after;
    const ctx = im.after.getContext('2d');
    ctx.clearRect(0, 0, w, h);
    const bg = radio('bg');
    if (bg === 'color') {
      ctx.fillStyle = im.bgColor.value;
      ctx.fillRect(0, 0, w, h);
    } else if (bg === 'image' && im.bgImage) {
      const b = im.bgImage; // cover: fill the frame, crop the overflow evenly
      const s = Math.max(w / b.width, h / b.height);
      ctx.drawImage(b, (w - b.width * s) / 2, (h - b.height * s) / 2, b.width * s, b.height * s);
    }
    ctx.drawImage(im.cutout, 0, 0);
    im.after.classList.toggle('checker', bg === 'none' || (bg === 'image' && !im.bgImage));
    im.section.dataset.background = bg === 'color' ? im.bgColor.value : bg;
  }

  function setView() {
    const alpha = radio('view') === 'alpha';
    im.alpha.hidden = !alpha;
    im.before.hidden = alpha;
    im.after.hidden = alpha;
    im.stage.classList.toggle('compare', !alpha);
    im.splitRow.hidden = alpha;
    im.download.textContent = alpha ? 'Download alpha matte' : 'Download result';
  }

  function setSplit() {
    const v = im.split.value;
    im.stage.style.setProperty('--split', `${v}%`);
    im.splitOut.value = `${v}%`;
    im.split.setAttribute('aria-valuetext', `${v}% original, ${100 - v}% cut-out`);
  }

  dropZone($('image-drop'), (file) => matteImage(file));
  im.split.addEventListener('input', setSplit);
  for (const r of document.querySelectorAll('input[name=view]')) r.addEventListener('change', setView);
  for (const r of document.querySelectorAll('input[name=bg]')) r.addEventListener('change', render);
  im.bgColor.addEventListener('input', () => {
    document.querySelector('input[name=bg][value=color]').checked = true;
    render();
  });
  im.bgFile.addEventListener('change', async () => {
    const file = im.bgFile.files[0];
    if (!file) return;
    try {
      im.bgImage = await createImageBitmap(file);
    } catch (_) {
      setStatus(im.status, `Could not read ${file.name} as an image.`, true);
      return;
    }
    document.querySelector('input[name=bg][value=image]').checked = true;
    render();
  });
  im.download.addEventListener('click', () => {
    const type = im.format.value;
    const canvas = radio('view') === 'alpha' ? im.alpha : im.after;
    const suffix = canvas === im.alpha ? 'alpha' : 'cutout';
    canvas.toBlob((blob) => {
      if (!blob) {
        setStatus(im.status, 'This browser cannot save that format.', true);
        return;
      }
      const url = URL.createObjectURL(blob);
      download(url, `${im.name}-${suffix}.${type === 'image/webp' ? 'webp' : 'png'}`);
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    }, type, 0.95);
  });
  setSplit();

  // ---------------------------------------------------------------- video

  const vid = {
    section: $('video'), form: $('video-form'), status: $('video-status'),
    output: $('video-output'), color: $('video-color'), colorField: $('video-color-field'),
    submit: $('video-submit'), cancel: $('video-cancel'), job: $('video-job'),
    bar: $('video-progress'), percent: $('video-percent'), detail: $('video-detail'),
    result: $('video-result'), player: $('video-player'), link: $('video-download'),
    name: $('video-name'),
    file: null, id: null, abort: null, url: null, available: true,
  };
  const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
  const STATES = {
    queued: 'Queued', running: 'Running', succeeded: 'Done', failed: 'Failed', cancelled: 'Cancelled',
  };
  const EXTENSIONS = {
    'video/webm': 'webm', 'video/mp4': 'mp4', 'video/quicktime': 'mov', 'application/zip': 'zip',
  };

  function setVideoAvailable(ok) {
    vid.available = ok;
    $('video-unavailable').hidden = ok;
    vid.form.hidden = !ok;
    vid.submit.disabled = !ok || !vid.file || Boolean(vid.abort);
  }

  // Random enough for an Idempotency-Key (crypto.randomUUID needs a secure context).
  function randomKey() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  function showJob(s) {
    const pct = s.state === 'succeeded' ? 100 : Math.floor((s.progress || 0) * 100);
    vid.section.dataset.state = s.state;
    vid.bar.style.setProperty('--progress', `${pct}%`);
    vid.bar.setAttribute('aria-valuenow', String(pct));
    vid.percent.textContent = `${pct}%`;
    const frames = s.frames_total ? `frame ${s.frames_done} of ${s.frames_total}` : '';
    vid.bar.setAttribute('aria-valuetext', frames ? `${pct}%, ${frames}` : `${pct}%`);
    const eta = s.state === 'running' && s.eta_s != null ? `about ${Math.ceil(s.eta_s)} s left` : '';
    vid.detail.textContent = [STATES[s.state] || s.state, frames, eta].filter(Boolean).join(' · ');
  }

  // Reads the job's server-sent events with fetch (EventSource cannot send the
  // key). Answers the last status seen; throws when there is no stream.
  async function followEvents(id, signal) {
    const res = await request(`/v1/videos/${id}/events`, {
      headers: { Accept: 'text/event-stream' }, signal,
    });
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let last = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return last;
      buffer += value;
      const events = buffer.split(/\r\n\r\n|\n\n|\r\r/);
      buffer = events.pop();
      for (const event of events) {
        const data = event.split(/\r\n|\n|\r/)
          .filter((line) => line.startsWith('data:'))
          .map((line) => line.slice(5).replace(/^ /, ''))
          .join('\n');
        if (!data) continue;
        last = JSON.parse(data);
        showJob(last);
        if (TERMINAL.has(last.state)) {
          reader.cancel().catch(() => {});
          return last;
        }
      }
    }
  }

  async function poll(id, signal) {
    for (;;) {
      const s = await (await request(`/v1/videos/${id}`, { signal })).json();
      showJob(s);
      if (TERMINAL.has(s.state)) return s;
      await new Promise((resolve) => setTimeout(resolve, 1000));
      if (signal.aborted) throw new DOMException('aborted', 'AbortError');
    }
  }

  async function runVideo() {
    const file = vid.file;
    const abort = new AbortController();
    vid.abort = abort;
    vid.id = null;
    vid.submit.disabled = true;
    vid.cancel.hidden = false;
    vid.result.hidden = true;
    vid.link.hidden = true;
    if (vid.url) URL.revokeObjectURL(vid.url);
    vid.player.removeAttribute('src');
    vid.job.hidden = false;
    showJob({ state: 'queued', progress: 0 });
    vid.section.dataset.state = 'uploading';
    setStatus(vid.status, `Uploading ${file.name}…`);
    try {
      const params = new URLSearchParams({ output: vid.output.value });
      if (vid.output.value === 'composite') params.set('background_color', vid.color.value);
      const headers = { 'Idempotency-Key': randomKey() };
      let body = file;
      if (file.type.startsWith('video/')) {
        headers['Content-Type'] = file.type;
      } else {
        body = new FormData();
        body.append('video', file);
      }
      const res = await request(`/v1/videos?${params}`, {
        method: 'POST', body, headers, signal: abort.signal,
      });
      let s = await res.json();
      vid.id = s.id;
      showJob(s);
      setStatus(vid.status, 'Processing…');
      if (!TERMINAL.has(s.state)) {
        let streamed = null;
        try {
          streamed = await followEvents(s.id, abort.signal);
        } catch (e) {
          if (e.name === 'AbortError') throw e;
        }
        // The stream broke off (or there was none): ask once a second instead.
        s = streamed && TERMINAL.has(streamed.state) ? streamed : await poll(s.id, abort.signal);
      }
      if (s.state === 'succeeded') {
        await showResult(s, abort.signal);
      } else if (s.state === 'failed') {
        setStatus(vid.status, `The job failed: ${s.error || 'no reason given'}.`, true);
      } else {
        setStatus(vid.status, 'The job was cancelled.');
      }
    } catch (e) {
      if (e.name !== 'AbortError') {
        vid.section.dataset.state = 'error';
        setStatus(vid.status, failure(`Could not process ${file.name}`, e), true);
      }
    } finally {
      if (vid.abort === abort) {
        vid.abort = null;
        vid.cancel.hidden = true;
        setVideoAvailable(vid.available);
      }
    }
  }

  async function showResult(s, signal) {
    setStatus(vid.status, 'Fetching the result…');
    const blob = await (await request(s.result_url, { signal })).blob();
    vid.url = URL.createObjectURL(blob);
    const type = blob.type.split(';')[0];
    vid.link.href = vid.url;
    vid.link.download = `${stem(vid.file.name)}-matte.${EXTENSIONS[type] || s.output || 'bin'}`;
    vid.link.hidden = false;
    const playable = type.startsWith('video/') && vid.player.canPlayType(type) !== '';
    if (playable) {
      vid.player.dataset.resultUrl = s.result_url;
      vid.player.src = vid.url;
      vid.result.hidden = false;
      $('video-drop').classList.add('compact');
    }
    vid.section.dataset.state = 'succeeded';
    setStatus(vid.status, playable
      ? 'Done: play the result or download it.'
      : 'Done. This format does not play in a browser: download it.');
  }

  dropZone($('video-drop'), (file) => {
    vid.file = file;
    vid.name.textContent = file.name;
    setVideoAvailable(vid.available);
    setStatus(vid.status, `${file.name} is ready: choose the output and process it.`);
  });
  vid.output.addEventListener('change', () => {
    vid.colorField.hidden = vid.output.value !== 'composite';
  });
  vid.form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (vid.file && !vid.abort) runVideo();
  });
  vid.cancel.addEventListener('click', async () => {
    if (!vid.id) {
      if (vid.abort) vid.abort.abort();
      vid.section.dataset.state = 'cancelled';
      setStatus(vid.status, 'Upload cancelled.');
      return;
    }
    try {
      await request(`/v1/videos/${vid.id}`, { method: 'DELETE' });
      setStatus(vid.status, 'Cancelling…');
    } catch (e) {
      setStatus(vid.status, failure('Could not cancel', e), true);
    }
  });

  probe();
})();

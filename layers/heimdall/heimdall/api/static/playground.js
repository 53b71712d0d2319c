// Heimdall playground: transcribe a file or a recording through this gateway, then play it with its
// segments and captions. Plain browser JavaScript, no build step, no third-party code; every request
// goes to this gateway (and, for a large file, to the presigned upload URL it hands out).
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  // The gateway's root, stage prefix included (API Gateway serves it under /<stage>/).
  const BASE = location.pathname.replace(/playground\/?$/, '');
  const POLL_MS = 1500;
  const POLL_LIMIT_MS = 3 * 3600 * 1000;
  let health = null;
  let audio = null; // the chosen File or the recorded Blob
  let audioName = '';
  let blobUrls = [];

  class GatewayError extends Error {}

  // The key lives in the input only (this tab's memory): never in storage, never in a URL.
  function headers(extra) {
    const all = Object.assign({}, extra);
    const key = $('key').value.trim();
    if (key) all.Authorization = 'Bearer ' + key;
    return all;
  }

  function say(text, state) {
    $('status').textContent = text;
    $('status').dataset.state = state || 'working';
  }

  function fail(message) {
    say('Failed.', 'failed');
    $('error').textContent = message;
    $('error').hidden = false;
  }

  function progress(done, total) {
    const bar = $('progress');
    bar.hidden = false;
    if (total) {
      bar.max = total;
      bar.value = done;
    } else {
      bar.removeAttribute('value'); // indeterminate
    }
  }

  function describe(error, status) {
    const e = (error && error.error) || error || {};
    return `${e.message || 'Unknown error.'} (${e.code || e.type || 'error'}${status ? ', HTTP ' + status : ''})`;
  }

  async function call(path, init) {
    const response = await fetch(BASE + path, init);
    if (response.ok) return response;
    const body = await response.text();
    let message;
    try {
      message = describe(JSON.parse(body), response.status);
    } catch {
      message = `HTTP ${response.status}: ${body.slice(0, 300)}`;
    }
    throw new GatewayError(message);
  }

  function option(parent, value) {
    const item = document.createElement('option');
    item.value = item.textContent = value;
    parent.append(item);
  }

  function group(label, values) {
    if (!values.length) return;
    const node = document.createElement('optgroup');
    node.label = label;
    values.forEach((value) => option(node, value));
    $('model').append(node);
  }

  async function loadHealth() {
    const response = await fetch(BASE + 'health');
    health = await response.json();
    $('key-row').hidden = !health.auth_required;
    const aliases = Object.keys(health.deployments || {});
    const targets = (health.providers || []).flatMap((p) => p.models.map((m) => `${p.name}/${m}`));
    group('Aliases', aliases);
    group('provider/model', targets);
    $('model').value = health.default_model || aliases[0] || targets[0] || '';
  }

  function syncOptions() {
    const format = $('format').value;
    const words = $('words');
    const stream = $('stream');
    words.disabled = format !== 'verbose_json';
    stream.disabled = format !== 'json' && format !== 'text';
    if (words.disabled) words.checked = false;
    if (stream.disabled) stream.checked = false;
  }

  // ---- audio: a file or a recording --------------------------------------------------------------
  $('file').addEventListener('change', () => {
    const file = $('file').files[0];
    audio = file || null;
    audioName = file ? file.name : '';
  });

  let recorder = null;
  $('record').addEventListener('click', async () => {
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (error) {
      fail(`The microphone is not available: ${error.message}`);
      return;
    }
    const chunks = [];
    recorder = new MediaRecorder(stream);
    recorder.addEventListener('dataavailable', (event) => chunks.push(event.data));
    recorder.addEventListener('stop', () => {
      stream.getTracks().forEach((track) => track.stop());
      const type = (recorder.mimeType || 'audio/webm').split(';')[0];
      audio = new Blob(chunks, { type });
      audioName = 'recording.' + ({ 'audio/ogg': 'ogg', 'audio/mp4': 'm4a' }[type] || 'webm');
      $('file').value = '';
      $('record-state').textContent = `Recorded ${(audio.size / 1024).toFixed(0)} KB.`;
      $('record').disabled = false;
      $('stop').disabled = true;
    });
    recorder.start();
    $('record').disabled = true;
    $('stop').disabled = false;
    $('stop').focus();
    $('record-state').textContent = 'Recording…';
  });
  $('stop').addEventListener('click', () => recorder && recorder.state === 'recording' && recorder.stop());

  // ---- transcription ----------------------------------------------------------------------------
  function options() {
    return {
      model: $('model').value,
      language: $('language').value.trim(),
      format: $('format').value,
      words: $('words').checked,
      stream: $('stream').checked,
    };
  }

  async function direct(o) {
    const form = new FormData();
    form.append('model', o.model);
    form.append('response_format', o.format);
    if (o.language) form.append('language', o.language);
    if (o.words) ['word', 'segment'].forEach((g) => form.append('timestamp_granularities[]', g));
    if (o.stream) form.append('stream', 'true');
    form.append('file', audio, audioName);
    say('Transcribing…');
    progress(0, 0);
    const response = await call('v1/audio/transcriptions', { method: 'POST', headers: headers(), body: form });
    if (o.stream) return readStream(response);
    return transcriptOf(await response.text(), o.format);
  }

  // Server-sent events from fetch's ReadableStream: each delta is shown as it arrives.
  async function readStream(response) {
    $('result').hidden = false;
    $('text').replaceChildren();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let done = null;
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) break;
      buffer += chunk.value.replace(/\r\n/g, '\n');
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
        if (!data || data === '[DONE]') continue;
        const event = JSON.parse(data);
        if (event.type === 'transcript.text.delta') {
          const span = document.createElement('span');
          span.className = 'delta';
          span.textContent = event.delta;
          $('text').append(span);
        } else if (event.type === 'transcript.text.done') {
          done = event;
        } else if (event.error) {
          throw new GatewayError(describe(event) + ' — after the stream had started');
        }
      }
    }
    if (!done) throw new GatewayError('The stream ended before its done event.');
    return { text: done.text, segments: null, words: null, raw: JSON.stringify(done, null, 2), json: done, streamed: true };
  }

  function seconds(stamp) {
    const [h, m, s] = stamp.trim().replace(',', '.').split(':');
    return s === undefined ? Number(h) * 60 + Number(m) : Number(h) * 3600 + Number(m) * 60 + Number(s);
  }

  // Cues of an SRT or VTT body, as segments.
  function cuesOf(body) {
    const cues = [];
    for (const block of body.replace(/\r\n/g, '\n').split(/\n\n+/)) {
      const lines = block.split('\n');
      const at = lines.findIndex((line) => line.includes('-->'));
      if (at < 0) continue;
      const [start, end] = lines[at].split('-->').map((part) => seconds(part.trim().split(' ')[0]));
      cues.push({ id: cues.length, start, end, text: lines.slice(at + 1).join('\n') });
    }
    return cues;
  }

  function transcriptOf(body, format) {
    if (format === 'json' || format === 'verbose_json') {
      const doc = JSON.parse(body);
      return { text: doc.text, segments: doc.segments || null, words: doc.words || null, raw: body, json: doc };
    }
    if (format === 'srt' || format === 'vtt') {
      const segments = cuesOf(body);
      return { text: segments.map((s) => s.text).join(' '), segments, words: null, raw: body, json: { segments } };
    }
    return { text: body.trim(), segments: null, words: null, raw: body, json: { text: body.trim() } };
  }

  // Large files: a presigned upload straight to the audio bucket, then the job, polled.
  async function viaUpload(o) {
    if (o.stream) throw new GatewayError('A file this large goes through an upload job, which does not stream; untick Stream.');
    const parameters = { filename: audioName, model: o.model, response_format: o.format };
    if (o.language) parameters.language = o.language;
    if (o.words) parameters.timestamp_granularities = ['word', 'segment'];
    say('Starting an upload…');
    const job = await (await call('v1/uploads', {
      method: 'POST',
      headers: headers({ 'Content-Type': 'application/json' }),
      body: JSON.stringify(parameters),
    })).json();
    await upload(job.upload);
    const statusPath = job.status_url.replace(/^\//, '');
    const started = Date.now();
    for (;;) {
      const status = await (await call(`${statusPath}?response_format=verbose_json`, { headers: headers() })).json();
      if (status.status === 'succeeded') {
        const result = transcriptOf(JSON.stringify(status), 'verbose_json');
        if (o.format !== 'verbose_json') {
          result.raw = await (await call(`${statusPath}?response_format=${o.format}`, { headers: headers() })).text();
        }
        return result;
      }
      if (status.status === 'failed') throw new GatewayError('The job failed: ' + describe(status.error));
      const { pieces_done: done, pieces_total: total } = status;
      say(total ? `Transcribing: ${done} of ${total} pieces done…` : `Transcribing (job ${status.status})…`);
      progress(done || 0, total || 0);
      if (Date.now() - started > POLL_LIMIT_MS) throw new GatewayError(`Job ${job.job_id} is still ${status.status}; ask for it later.`);
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  function upload(target) {
    return new Promise((resolve, reject) => {
      const form = new FormData();
      Object.entries(target.fields).forEach(([name, value]) => form.append(name, value));
      form.append(target.file_field || 'file', audio, audioName);
      const xhr = new XMLHttpRequest(); // fetch reports no upload progress
      xhr.open('POST', target.url);
      xhr.upload.addEventListener('progress', (event) => {
        if (!event.lengthComputable) return;
        progress(event.loaded, event.total);
        say(`Uploading: ${Math.floor((100 * event.loaded) / event.total)}%`);
      });
      xhr.addEventListener('load', () =>
        xhr.status < 300 ? resolve() : reject(new GatewayError(`The upload was refused (HTTP ${xhr.status}).`)));
      xhr.addEventListener('error', () => reject(new GatewayError('The upload did not reach the audio bucket.')));
      xhr.send(form);
    });
  }

  // ---- the result: player, segments, captions, downloads -----------------------------------------
  function blobUrl(content, type) {
    const url = URL.createObjectURL(content instanceof Blob ? content : new Blob([content], { type }));
    blobUrls.push(url);
    return url;
  }

  function clock(t) {
    const m = Math.floor(t / 60);
    return `${m}:${(t - m * 60).toFixed(1).padStart(4, '0')}`;
  }

  function listSegments(segments, words) {
    const list = $('segments');
    list.replaceChildren();
    $('segments-title').hidden = !segments || !segments.length;
    if (!segments) return;
    let w = 0;
    segments.forEach((segment, i) => {
      const item = document.createElement('li');
      item.dataset.start = segment.start;
      item.dataset.end = segment.end;
      const button = document.createElement('button');
      button.type = 'button';
      const time = document.createElement('span');
      time.className = 'time';
      time.textContent = clock(segment.start);
      button.append(time);
      const next = i + 1 < segments.length ? segments[i + 1].start : Infinity;
      const mine = [];
      while (words && w < words.length && words[w].start < next) mine.push(words[w++]);
      if (mine.length) {
        mine.forEach((word, k) => {
          const span = document.createElement('span');
          span.className = 'word';
          span.dataset.start = word.start;
          span.dataset.end = word.end;
          span.textContent = word.word;
          button.append(span, k + 1 < mine.length ? ' ' : '');
        });
      } else {
        button.append(segment.text.trim());
      }
      button.addEventListener('click', () => {
        $('player').currentTime = segment.start;
        $('player').play().catch(() => {});
      });
      item.append(button);
      list.append(item);
    });
  }

  function follow() {
    const t = $('player').currentTime;
    const list = $('segments');
    let current = null;
    for (const item of list.children) if (Number(item.dataset.start) <= t) current = item;
    if (current && Number(current.dataset.end) < t && current !== list.lastElementChild) current = null;
    for (const item of list.children) {
      if (item === current) continue;
      if (item.hasAttribute('aria-current')) item.removeAttribute('aria-current');
    }
    if (!current) return;
    if (!current.hasAttribute('aria-current')) {
      current.setAttribute('aria-current', 'true');
      list.scrollTop = current.offsetTop - list.clientHeight / 3;
    }
    for (const word of current.querySelectorAll('.word')) {
      word.classList.toggle('on', Number(word.dataset.start) <= t && t < Number(word.dataset.end));
    }
  }

  function link(label, content, type, filename) {
    const a = document.createElement('a');
    a.href = blobUrl(content, type);
    a.download = filename;
    a.textContent = label;
    a.id = 'download-' + label.toLowerCase();
    return a;
  }

  async function show(result) {
    $('result').hidden = false;
    if (!result.streamed) $('text').textContent = result.text;
    $('raw').textContent = result.raw;
    const player = $('player');
    player.querySelectorAll('track').forEach((track) => track.remove());
    $('caption').textContent = '';
    player.src = blobUrl(audio);
    listSegments(result.segments, result.words);
    // Text, SRT and VTT are rendered by the gateway, with the code its API renders them with.
    const rendered = await (await call('playground/render', {
      method: 'POST',
      headers: headers({ 'Content-Type': 'application/json' }),
      body: JSON.stringify({ text: result.text, segments: result.segments }),
    })).json();
    const stem = audioName.replace(/\.[^.]*$/, '') || 'transcript';
    const links = [link('Text', rendered.text, 'text/plain', stem + '.txt')];
    if (rendered.srt !== null) links.push(link('SRT', rendered.srt, 'application/x-subrip', stem + '.srt'));
    if (rendered.vtt !== null) {
      links.push(link('VTT', rendered.vtt, 'text/vtt', stem + '.vtt'));
      const track = document.createElement('track');
      track.kind = 'captions';
      track.label = 'Transcript';
      track.srclang = $('language').value.trim() || 'en';
      track.src = blobUrl(rendered.vtt, 'text/vtt');
      player.append(track);
      // An <audio> element draws no captions: the browser parses the VTT, the page shows the active cue.
      track.track.mode = 'hidden';
      track.track.addEventListener('cuechange', () => {
        const active = Array.from(track.track.activeCues || []);
        // where one cue ends as the next starts, both are active: show the later one
        $('caption').textContent = active.length ? active[active.length - 1].text : '';
      });
    }
    links.push(link('JSON', JSON.stringify(result.json, null, 2) + '\n', 'application/json', stem + '.json'));
    $('downloads').replaceChildren(...links);
  }

  function reset() {
    $('error').hidden = true;
    $('progress').hidden = true;
    blobUrls.forEach((url) => URL.revokeObjectURL(url));
    blobUrls = [];
  }

  $('form').addEventListener('submit', async (event) => {
    event.preventDefault();
    reset();
    if (!audio) return fail('Choose a file or record something first.');
    const o = options();
    $('go').disabled = true;
    try {
      let result;
      if (audio.size > health.max_direct_bytes) {
        if (!health.uploads) {
          const mb = (n) => (n / 1048576).toFixed(1);
          throw new GatewayError(`The file is ${mb(audio.size)} MB; this gateway takes ${mb(health.max_direct_bytes)} MB directly and has no upload bucket for larger files.`);
        }
        result = await viaUpload(o);
      } else {
        result = await direct(o);
      }
      await show(result);
      say('Done.', 'done');
    } catch (error) {
      fail(error instanceof GatewayError ? error.message : `The request failed: ${error.message}`);
    } finally {
      $('go').disabled = false;
      $('progress').hidden = true;
    }
  });

  $('format').addEventListener('change', syncOptions);
  $('player').addEventListener('timeupdate', follow);
  $('player').addEventListener('seeked', follow);
  syncOptions();
  loadHealth().catch((error) => fail(`Cannot read the gateway's health: ${error.message}`));
})();

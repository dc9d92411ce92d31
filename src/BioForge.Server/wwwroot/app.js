// BioForge's page: calls the service's own routes (same origin), draws the contact map and residue probabilities on
// canvases, and shows generated and screened molecules with server-rendered depictions. No libraries, no network
// beyond this server.
'use strict';

const EXAMPLE_PROTEIN = 'MQIFVKTLTGKTITLEVEPSDTIENVKAKIQDKEGIPPDQQRLIFAGKQLEDGRTLSDYNIQKESTLHLVLRLRGG';
// ABL1 as in the Davis benchmark (DeepDTA proteins.txt).
const EXAMPLE_TARGET = 'PFWKILNPLLERGTYYYFMGQQPGKVLGDQRRPSLPALHFIKGAGKKESSRHGGPHCNVFVEHEALQRPVASDFEPQGLSEAARWNSKENLLAGPSENDPNLFVALYDFVASGDNTLSITKGEKLRVLGYNHNGEWCEAQTKNGQGWVPSNYITPVNSLEKHSWYHGPVSRNAAEYLLSSGINGSFLVRESESSPGQRSISLRYEGRVYHYRINTASDGKLYVSSESRFNTLAELVHHHSTVADGLITTLHYPAPKRNKPTVYGVSPNYDKWEMERTDITMKHKLGGGQYGEVYEGVWKKYSLTVAVKTLKEDTMEVEEFLKEAAVMKEIKHPNLVQLLGVCTREPPFYIITEFMTYGNLLDYLRECNRQEVNAVVLLYMATQISSAMEYLEKKNFIHRDLAARNCLVGENHLVKVADFGLSRLMTGDTYTAHAGAKFPIKWTAPESLAYNKFSIKSDVWAFGVLLWEIATYGMSPYPGIDLSQVYELLEKDYRMERPEGCPEKVYELMRACWQWNPSDRPSFAEIHQAFETMFQESSISDEVEKELGKQGVRGAVSTLLQAPELPTKTRTSRRAAEHRDTTDVPEMPHSKGQGESDPLDHEPAVSPLLPRKERGPPEGGLNEDERLLPKDKKTNLFSALIKKKKKTAPTPPKRSSSFREMDGQPERRGAGEEEGRDISNGALAFTPLDTADPAKSPKPSNGAGVPNGALRESGGSGFRSPHLWKKSSTLTSSRLATGEEEGGGSSSKRFLRSCSASCVPHGAKDTEWRSVTLPRDLQSTGRQFDSSTFGGHKSEKPALPRKRAGENRSDQVTRGTVTPPPRLVKKNEEAADEVFKDIMESSPGSSPPNLTPKPLRRQVTVAPASGLPHKEEAGKGSALGTPAAAEPVTPTSKAGSGAPGGTSKGPAEESRVRRHKHSSESPGRDKGKLSRLKPAPPPPPAASAGKAGGKPSQSPSQEAAGEAVLGAKTKATSLVDAVNSDAAKPSQPGEGLKKPVLPATPKPQSAKPSGTPISPAPVPSTLPSASSALAGDQPSSTAFIPLISTRVSLRKTRQPPERIASGAITKGVVLDSTEALCLAISRNSEQMASHSAVLEAGKNLYTFCVSYVDSIQQMRNKFAFREAINKLENNLRELQICPATAGSGPAATQDFSKLLSSVKEISDIVQR';

const $ = id => document.getElementById(id);

function headers(json) {
  const h = {};
  if (json) h['Content-Type'] = 'application/json';
  const key = $('api-key').value.trim();
  if (key) h['Authorization'] = 'Bearer ' + key;
  return h;
}

async function call(method, path, body) {
  const response = await fetch(path, { method, headers: headers(body !== undefined), body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) throw new Error(data?.error?.message ?? `HTTP ${response.status}`);
  return data;
}

function say(id, text, error = false) {
  const element = $(id);
  element.textContent = text;
  element.classList.toggle('error', error);
}

async function busy(button, work) {
  button.disabled = true;
  try { await work(); } finally { button.disabled = false; }
}

// Depictions come from the server as SVG; fetched (not <img src>) so the API key travels with them.
async function depiction(smiles, width = 300, height = 220) {
  const response = await fetch(`/v1/molecule/depict?smiles=${encodeURIComponent(smiles)}&width=${width}&height=${height}`, { headers: headers(false) });
  if (!response.ok) return null;
  const img = document.createElement('img');
  img.alt = smiles;
  img.src = URL.createObjectURL(await response.blob());
  img.addEventListener('load', () => URL.revokeObjectURL(img.src), { once: true });
  return img;
}

// Viridis-like ramp: dark blue (0) → green → yellow (1).
function colour(p) {
  const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const x = Math.min(Math.max(p, 0), 1) * (stops.length - 1), i = Math.min(Math.floor(x), stops.length - 2), f = x - i;
  const c = stops[i].map((v, k) => Math.round(v + f * (stops[i + 1][k] - v)));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

function drawContacts(contacts) {
  const canvas = $('contact-map'), ctx = canvas.getContext('2d'), n = contacts.length, cell = canvas.width / n;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      ctx.fillStyle = colour(contacts[i][j]);
      ctx.fillRect(j * cell, i * cell, Math.ceil(cell), Math.ceil(cell));
    }
  canvas.dataset.residues = n;
}

function drawResidues(predictions) {
  const canvas = $('residue-probabilities'), ctx = canvas.getContext('2d'), n = predictions.length;
  const left = 34, bottom = 22, width = canvas.width - left - 6, height = canvas.height - bottom - 8, bar = width / n;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = '#667085';
  ctx.font = '11px sans-serif';
  for (const t of [0, 0.5, 1]) {
    const y = 8 + height * (1 - t);
    ctx.fillText(t.toFixed(1), 4, y + 4);
    ctx.fillRect(left, y, width, 0.5);
  }
  predictions.forEach((p, i) => {
    const h = height * p.wild_type_probability;
    ctx.fillStyle = colour(p.wild_type_probability);
    ctx.fillRect(left + i * bar, 8 + height - h, Math.max(1, bar - 0.5), h);
  });
  ctx.fillStyle = '#667085';
  const step = Math.max(1, Math.ceil(n / 12));
  for (let i = 0; i < n; i += step) ctx.fillText(String(i + 1), left + i * bar, canvas.height - 6);
  canvas.onmousemove = e => {
    const x = (e.offsetX * canvas.width / canvas.clientWidth - left) / bar, p = predictions[Math.floor(x)];
    $('residue-hover').textContent = p ? `${p.wild_type}${p.position}: p = ${p.wild_type_probability.toFixed(3)}; likeliest ${p.candidates.map(c => `${c.token} ${c.probability.toFixed(2)}`).join(', ')}` : '';
  };
  canvas.dataset.residues = n;
}

async function analyzeProtein() {
  const sequence = $('protein-sequence').value.replace(/\s+/g, '');
  const model = $('protein-model').value;
  say('protein-message', 'computing…');
  try {
    const [contacts, profile] = await Promise.all([
      call('POST', '/v1/protein/contacts', { model, sequence, top: 5 }),
      call('POST', '/v1/protein/fill-mask', { model, sequence, each_position: true, top_k: 3 }),
    ]);
    drawContacts(contacts.contacts);
    drawResidues(profile.predictions);
    // An untrained contact head gives about 0.5 everywhere: said in place of "strongest contacts" that would mean nothing.
    $('contact-top').textContent = contacts.contact_head_trained
      ? 'strongest long-range: ' + contacts.top_contacts.map(c => `${c.i}–${c.j} (${c.probability.toFixed(2)})`).join(', ')
      : `not a prediction: ${model}'s contact head was never fitted to structures (about 0.5 everywhere); serve a Hugging Face ESM-2 checkpoint (facebook/esm2_t6_8M_UR50D or larger) for contacts`;
    $('contact-top').classList.toggle('caution', !contacts.contact_head_trained);
    const mean = profile.predictions.reduce((s, p) => s + p.wild_type_probability, 0) / profile.predictions.length;
    say('protein-message', `${contacts.length} residues; mean wild-type probability ${mean.toFixed(3)}`);
  } catch (e) {
    say('protein-message', e.message, true);
  }
}

// Polls a screening job until it ends, moving the progress bar; returns its results.
async function screenJob(body, bar, messageId) {
  let job = await call('POST', '/v1/screen', body);
  bar.parentElement.hidden = false;
  while (job.status === 'queued' || job.status === 'running') {
    bar.style.width = `${Math.round(100 * job.progress)}%`;
    say(messageId, `screening: ${job.status}, ${job.processed} of ${job.total} molecules`);
    await new Promise(r => setTimeout(r, 300));
    job = await call('GET', job.status_url);
  }
  bar.style.width = '100%';
  if (job.status !== 'succeeded') throw new Error(`screening job ${job.status}${job.error ? ': ' + job.error : ''}`);
  return call('GET', job.results_url);
}

async function design() {
  const gallery = $('gallery');
  gallery.replaceChildren();
  $('design-progress').style.width = '0';
  try {
    say('design-message', 'generating (the optimizer runs on the server)…');
    const generated = await call('POST', '/generate', {
      smi: $('seed').value.trim(), property_name: $('property').value, min_similarity: Number($('min-similarity').value),
      iterations: Number($('iterations').value), num_molecules: Number($('num-molecules').value), particles: 32, algorithm: 'CMA-ES',
    });
    const molecules = JSON.parse(generated.molecules);
    if (molecules.length === 0) throw new Error('the optimizer returned no molecule');
    const results = await screenJob({ model: $('affinity-model').value || undefined, target: $('target').value.replace(/\s+/g, ''),
      smiles: molecules.map(m => m.sample), ids: molecules.map((_, i) => String(i)), top: molecules.length }, $('design-progress'), 'design-message');
    const affinity = new Map(results.hits.map(h => [Number(h.id), h]));
    const ranked = molecules.map((m, i) => ({ ...m, hit: affinity.get(i) })).sort((a, b) => (b.hit?.affinity ?? -1) - (a.hit?.affinity ?? -1));
    for (const m of ranked) {
      const card = document.createElement('div');
      card.className = 'card';
      const img = await depiction(m.sample, 300, 220);
      if (img) card.append(img);
      const smiles = document.createElement('div');
      smiles.className = 'smiles';
      smiles.textContent = m.sample;
      const facts = document.createElement('dl');
      for (const [k, v] of [[`predicted ${results.measure}`, m.hit?.affinity?.toFixed(2) ?? '–'], [generated.score_type, m.score.toFixed(3)],
        ['similarity', m.similarity.toFixed(2)], ['SA score', m.hit?.sa?.toFixed(2) ?? '–'], ['alerts', m.hit?.alerts || 'none']]) {
        const dt = document.createElement('dt'), dd = document.createElement('dd');
        dt.textContent = k;
        dd.textContent = v;
        facts.append(dt, dd);
      }
      card.append(smiles, facts);
      gallery.append(card);
    }
    say('design-message', `${ranked.length} candidates from ${generated.sampled} sampled molecules (seed ${generated.seed}), ranked by predicted ${results.measure}`);
  } catch (e) {
    say('design-message', e.message, true);
  }
}

async function screen() {
  const lines = $('library').value.split('\n').map(l => l.trim()).filter(l => l && !l.startsWith('#'));
  const smiles = lines.map(l => l.split(/\s+/)[0]), ids = lines.map((l, i) => l.split(/\s+/)[1] ?? `#${i + 1}`);
  const table = $('hits'), body = table.querySelector('tbody');
  body.replaceChildren();
  table.hidden = true;
  try {
    if (smiles.length === 0) throw new Error('paste at least one SMILES');
    const results = await screenJob({ model: $('affinity-model').value || undefined, target: $('target').value.replace(/\s+/g, ''), smiles, ids,
      top: Number($('screen-top').value) }, $('screen-progress'), 'screen-message');
    for (const h of results.hits) {
      const row = body.insertRow();
      row.insertCell().textContent = h.rank;
      const cell = row.insertCell();
      const img = await depiction(h.smiles, 240, 160);
      if (img) cell.append(img);
      for (const v of [h.id, h.affinity.toFixed(2), h.qed.toFixed(2), h.sa.toFixed(2), h.alerts || 'none']) row.insertCell().textContent = v;
    }
    table.hidden = false;
    say('screen-message', `${results.scored} molecules scored, ${results.invalid} unreadable${results.first_errors.length ? ' (' + results.first_errors[0] + ')' : ''}`);
  } catch (e) {
    say('screen-message', e.message, true);
  }
}

// Streams /v1/completions (server-sent events): each chunk's text is appended to its sample's line as it arrives; the
// prompt is shown before each continuation, since answers hold the continuation only.
async function sample() {
  const n = Number($('sample-n').value), prompt = $('sample-prompt').value.trim();
  const list = $('samples');
  const lines = Array.from({ length: n }, () => { const li = document.createElement('li'); li.textContent = prompt; return li; });
  list.replaceChildren(...lines);
  say('sample-message', 'sampling…');
  try {
    const response = await fetch('/v1/completions', {
      method: 'POST', headers: headers(true),
      body: JSON.stringify({ model: $('sample-model').value, prompt, n, max_tokens: Number($('sample-max').value), temperature: Number($('sample-temperature').value), stream: true }),
    });
    if (!response.ok) {
      const data = await response.json().catch(() => null);
      throw new Error(data?.error?.message ?? `HTTP ${response.status}`);
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '', done = false, finished = 0;
    while (!done) {
      const { value, done: end } = await reader.read();
      if (end) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, cut).replace(/^data: /, '');
        buffer = buffer.slice(cut + 2);
        if (event === '[DONE]') { done = true; break; }
        const chunk = JSON.parse(event);
        if (chunk.error) throw new Error(chunk.error.message);
        for (const choice of chunk.choices ?? []) {
          lines[choice.index].textContent += choice.text;
          if (choice.finish_reason) { lines[choice.index].classList.add('done'); finished++; }
        }
      }
    }
    say('sample-message', done ? `${finished} of ${n} samples` : 'the stream ended early', !done);
  } catch (e) {
    say('sample-message', e.message, true);
  }
}

async function loadModels() {
  try {
    const models = await call('GET', '/v1/models');
    const fill = (id, kind) => {
      const select = $(id);
      select.replaceChildren(...models.data.filter(m => m.kind === kind).map(m => new Option(m.id, m.id)));
    };
    // The protein panel fills masks as well as drawing contacts: an encoder saved without its masked-LM head serves neither here.
    $('protein-model').replaceChildren(...models.data.filter(m => m.routes?.includes('/v1/protein/fill-mask')).map(m => new Option(m.id, m.id)));
    const decoders = models.data.filter(m => m.routes?.includes('/v1/completions'));
    $('sample-model').replaceChildren(...decoders.map(m => new Option(m.id, m.id)));
    // A model reads max_model_len positions, its begin token one of them: max_tokens past the rest is refused.
    const fitLength = () => {
      const room = (decoders.find(m => m.id === $('sample-model').value)?.max_model_len ?? 1025) - 1;
      $('sample-max').max = room;
      if (Number($('sample-max').value) > room) $('sample-max').value = room;
    };
    $('sample-model').onchange = fitLength;
    fitLength();
    fill('affinity-model', 'affinity');
    $('service-status').textContent = `${models.data.length} models: ${models.data.map(m => m.id).join(', ')}`;
  } catch (e) {
    $('service-status').textContent = e.message;
  }
}

$('api-key').value = sessionStorage.getItem('bioforge-key') ?? '';
$('api-key').addEventListener('change', () => { sessionStorage.setItem('bioforge-key', $('api-key').value); loadModels(); });
$('protein-example').addEventListener('click', () => { $('protein-sequence').value = EXAMPLE_PROTEIN; });
$('target-example').addEventListener('click', () => { $('target').value = EXAMPLE_TARGET; });
$('protein-run').addEventListener('click', e => busy(e.target, analyzeProtein));
$('design-run').addEventListener('click', e => busy(e.target, design));
$('screen-run').addEventListener('click', e => busy(e.target, screen));
$('sample-run').addEventListener('click', e => busy(e.target, sample));
loadModels();

// Runs the README's marked shell blocks, in order, in one bash, and checks what each command
// printed against the output the README shows under it. Started by tests/readme/test_readme.sh:
//   node readme_check.js README.md WORKDIR BASE_URL
// The blocks run in WORKDIR with the environment of this process (the runner sets the database
// URL, the master key file and PATH); the README's http://127.0.0.1:8080 becomes BASE_URL.
//
// What the README marks: an HTML comment `<!-- readme-test: NAME -->` right before a ```sh fence.
// Every name in EXPECTED must be there, once, so a renamed or lost block fails instead of running
// nothing. In a block, lines that start with "#   " (a hash and three spaces) under a command are
// what it prints; other comment lines are prose. The shown output is read as:
//   - JSON values ({...} or [...], one or more, a value may go on over several "#   " lines),
//     optionally followed by an HTTP status (curl -w ' %{http_code}'), compared field by field:
//     a literal value must be equal; "..." as a member means "more fields", as a value "any";
//     a string with "..." in it matches any text there; an object without "..." must have
//     exactly the fields shown; the fields in VARYING (tokens, times, MACs) are compared by type.
//   - otherwise text, compared with runs of white space made one and "..." matching any text.
// Every command must exit 0 (a README line that shows a failure writes `; echo "exit $?"`).
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const EXPECTED = ['walkthrough', 'bulk-list', 'bulk-client', 'cli'];
const README_URL = 'http://127.0.0.1:8080';
const VARYING = new Set([
  'fingerprint', 'usersig', 'token', 'issued_at', 'expire_at', 'created_at', 'updated_at',
  'activated_at', 'retired_at', 'last_used_at', 'at', 'mac', 'last_mac', 'batch_id', 'sha256',
  'started_at', 'finished_at', 'TLS.time', 'TLS.sig', 'TLS.userbuf',
]);
const MARK = '\u001ereadme-step';

// ---- the README's blocks -----------------------------------------------------------------------

function extractBlocks(text) {
  const lines = text.split('\n');
  const blocks = [];
  const seen = new Set();
  for (let i = 0; i < lines.length; i++) {
    const m = /^<!--\s*readme-test:\s*([A-Za-z0-9_-]+)\s*-->\s*$/.exec(lines[i]);
    if (!m) continue;
    const name = m[1];
    if (seen.has(name)) throw new Error(`README line ${i + 1}: block "${name}" is marked twice`);
    seen.add(name);
    if (lines[i + 1] !== '```sh') {
      throw new Error(`README line ${i + 1}: the marker "${name}" must be followed by a \`\`\`sh fence`);
    }
    const body = [];
    let j = i + 2;
    for (; j < lines.length && lines[j] !== '```'; j++) body.push({ n: j + 1, text: lines[j] });
    if (j >= lines.length) throw new Error(`README line ${i + 2}: the block "${name}" never closes`);
    blocks.push({ name, lines: body });
    i = j;
  }
  const names = blocks.map((b) => b.name);
  const missing = EXPECTED.filter((n) => !names.includes(n));
  if (missing.length) throw new Error(`README has no block marked readme-test: ${missing.join(', ')}`);
  const unknown = names.filter((n) => !EXPECTED.includes(n));
  if (unknown.length) throw new Error(`README marks blocks this test does not expect: ${unknown.join(', ')}`);
  return blocks;
}

// A block's steps: { line, cmd, shown: [lines of output] }.
function parseSteps(block) {
  const steps = [];
  let cur = null;
  let cont = null;
  for (const { n, text } of block.lines) {
    if (cont) {
      cont.cmd += '\n' + text;
      if (!/\\$/.test(text)) cont = null;
      continue;
    }
    if (/^#   /.test(text)) {
      if (!cur) throw new Error(`README line ${n}: output shown before any command`);
      cur.shown.push(text.slice(4));
      continue;
    }
    if (/^\s*(#.*)?$/.test(text)) {
      if (cur && cur.shown.length) cur = null; // prose ends the output of the command above
      continue;
    }
    cur = { block: block.name, line: n, cmd: text, shown: [] };
    steps.push(cur);
    if (/\\$/.test(text)) cont = cur;
  }
  return steps;
}

// ---- the shown-output dialect of JSON ----------------------------------------------------------

const ANY = Symbol('any');
const MORE = Symbol('more');

// Parses a sequence of JSON values in which "..." may stand for members and values.
function parseValues(src, loose) {
  let i = 0;
  const ws = () => { while (i < src.length && /\s/.test(src[i])) i++; };
  const fail = (why) => { throw new Error(`${why} at offset ${i} of: ${src.slice(0, 300)}`); };
  const dots = () => loose && src.startsWith('...', i) && ((i += 3), true);
  function value() {
    ws();
    if (dots()) return ANY;
    const c = src[i];
    if (c === '{') {
      i++;
      const obj = {};
      ws();
      if (src[i] === '}') { i++; return obj; }
      for (;;) {
        ws();
        if (dots()) obj[MORE] = true;
        else {
          if (src[i] !== '"') fail('a field name expected');
          const k = string();
          ws();
          if (src[i] !== ':') fail('":" expected');
          i++;
          obj[k] = value();
        }
        ws();
        if (src[i] === ',') { i++; continue; }
        if (src[i] === '}') { i++; return obj; }
        fail('"," or "}" expected');
      }
    }
    if (c === '[') {
      i++;
      const arr = [];
      ws();
      if (src[i] === ']') { i++; return arr; }
      for (;;) {
        arr.push(value());
        ws();
        if (src[i] === ',') { i++; continue; }
        if (src[i] === ']') { i++; return arr; }
        fail('"," or "]" expected');
      }
    }
    if (c === '"') return string();
    const m = /^(-?\d+(\.\d+)?([eE][+-]?\d+)?|true|false|null)/.exec(src.slice(i));
    if (!m) fail('a value expected');
    i += m[0].length;
    return JSON.parse(m[0]);
  }
  function string() {
    const m = /^"(?:[^"\\]|\\.)*"/.exec(src.slice(i));
    if (!m) fail('a string expected');
    i += m[0].length;
    return JSON.parse(m[0]);
  }
  const out = [];
  ws();
  while (i < src.length) {
    out.push(value());
    ws();
  }
  return out;
}

// "a...b" matches any text with a at the start and b at the end.
function wildMatch(pattern, s) {
  const parts = pattern.split('...');
  if (!s.startsWith(parts[0])) return false;
  let pos = parts[0].length;
  for (let k = 1; k < parts.length - 1; k++) {
    const at = s.indexOf(parts[k], pos);
    if (at < 0) return false;
    pos = at + parts[k].length;
  }
  const last = parts[parts.length - 1];
  return parts.length === 1 ? s === pattern : s.length - pos >= last.length && s.endsWith(last);
}

const typeOf = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

// name: the field's name (VARYING), '' for an array item or a whole value.
function compare(want, got, where, name, errs) {
  if (want === ANY) return;
  if (typeof want === 'string' && want.includes('...')) {
    if (typeof got !== 'string' || !wildMatch(want, got)) {
      errs.push(`${where}: want ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
    }
    return;
  }
  if (VARYING.has(name) && typeOf(want) !== 'object') {
    if (want !== null && got !== null && typeOf(want) !== typeOf(got)) {
      errs.push(`${where}: want a ${typeOf(want)}, got ${JSON.stringify(got)}`);
    }
    return;
  }
  if (typeOf(want) !== typeOf(got)) {
    errs.push(`${where}: want ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
    return;
  }
  if (typeOf(want) === 'object') {
    for (const k of Object.keys(want)) {
      if (!(k in got)) errs.push(`${where}.${k}: missing`);
      else compare(want[k], got[k], `${where}.${k}`, k, errs);
    }
    if (!want[MORE]) {
      for (const k of Object.keys(got)) {
        if (!(k in want)) errs.push(`${where}.${k}: not shown in the README (add it, or "...")`);
      }
    }
  } else if (typeOf(want) === 'array') {
    if (want.length !== got.length) errs.push(`${where}: want ${want.length} items, got ${got.length}`);
    for (let k = 0; k < Math.min(want.length, got.length); k++) {
      compare(want[k], got[k], `${where}[${k}]`, '', errs);
    }
  } else if (want !== got) {
    errs.push(`${where}: want ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
  }
}

// Checks one step's output; returns a list of problems.
function check(step, out) {
  const shown = step.shown.join(' ').trim();
  const got = out.replace(/\n$/, '');
  const errs = [];
  if (/^[{[]/.test(shown)) {
    let wantText = shown;
    let gotText = got.trim();
    const st = /^([\s\S]*[}\]])\s+(\d{3})$/.exec(shown);
    if (st) {
      wantText = st[1];
      const g = /^([\s\S]*?)\s*(\d{3})$/.exec(gotText);
      if (!g) return [`want HTTP status ${st[2]} after the reply, got ${JSON.stringify(got)}`];
      if (g[2] !== st[2]) errs.push(`HTTP status: want ${st[2]}, got ${g[2]}`);
      gotText = g[1];
    }
    const want = parseValues(wantText, true);
    let values;
    try {
      values = parseValues(gotText, false);
    } catch (e) {
      return [...errs, `the output is not JSON: ${JSON.stringify(got.slice(0, 400))}`];
    }
    if (values.length !== want.length) {
      errs.push(`want ${want.length} JSON value(s), got ${values.length}: ${got.slice(0, 400)}`);
    }
    for (let k = 0; k < Math.min(want.length, values.length); k++) {
      compare(want[k], values[k], want.length > 1 ? `$${k + 1}` : '$', '', errs);
    }
  } else {
    const norm = (s) => s.replace(/\s+/g, ' ').trim();
    if (!wildMatch(norm(shown), norm(got))) {
      errs.push(`want ${JSON.stringify(norm(shown))}, got ${JSON.stringify(norm(got))}`);
    }
  }
  return errs;
}

// ---- run ---------------------------------------------------------------------------------------

function main() {
  const [readme, work, base] = process.argv.slice(2);
  if (!readme || !work || !base) {
    console.error('usage: node readme_check.js README.md WORKDIR BASE_URL');
    process.exit(2);
  }
  const blocks = extractBlocks(fs.readFileSync(readme, 'utf8'));
  const steps = blocks.flatMap(parseSteps);
  const urls = steps.filter((s) => s.cmd.includes(README_URL)).length;
  if (urls === 0) throw new Error(`no command of the README's blocks uses ${README_URL}`);
  const shownCount = steps.filter((s) => s.shown.length).length;
  for (const b of blocks) {
    if (!steps.some((s) => s.block === b.name && s.shown.length)) {
      throw new Error(`README block "${b.name}" shows no output to check`);
    }
  }

  // One bash for every block, so that variables carry over; after each command a marker line
  // with its number and exit status goes to stdout and stderr.
  const script = ['cd "$1" || exit 99'];
  steps.forEach((s, k) => {
    script.push(`# README line ${s.line}`);
    script.push(s.cmd.split(README_URL).join(base));
    script.push(`__rc=$?; printf '\\n${MARK} %d %d\\n' ${k} "$__rc"; printf '\\n${MARK} %d %d\\n' ${k} "$__rc" >&2`);
    script.push('[ "$__rc" -eq 0 ] || exit 100');
  });
  const file = path.join(work, 'readme-blocks.sh');
  fs.writeFileSync(file, script.join('\n') + '\n');
  const r = spawnSync('bash', [file, work], {
    encoding: 'utf8', timeout: 240000, maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (r.error) throw r.error;
  fs.writeFileSync(path.join(work, 'readme-blocks.err'), r.stderr);

  const outs = new Map();
  let rest = r.stdout;
  const re = new RegExp(`\\n${MARK} (\\d+) (\\d+)\\n`);
  for (;;) {
    const m = re.exec(rest);
    if (!m) break;
    outs.set(Number(m[1]), { out: rest.slice(0, m.index), rc: Number(m[2]) });
    rest = rest.slice(m.index + m[0].length);
  }

  let pass = 0;
  let fail = 0;
  steps.forEach((s, k) => {
    const where = `README line ${s.line} (${s.block}): ${s.cmd.split('\n')[0].slice(0, 100)}`;
    const o = outs.get(k);
    if (!o) {
      if (k === outs.size && r.status !== 100) {
        console.log(`FAIL ${where}\n     did not finish (bash status ${r.status}, signal ${r.signal})`);
        fail++;
      }
      return;
    }
    const errs = o.rc !== 0 ? [`exit status ${o.rc}`] : [];
    if (s.shown.length) errs.push(...check(s, o.out));
    if (errs.length) {
      fail++;
      console.log(`FAIL ${where}`);
      for (const e of errs) console.log(`     ${e}`);
      if (o.rc !== 0) {
        const err = (r.stderr.split(MARK)[k] || '').replace(/^ \d+ \d+\n/, '');
        console.log(`     stderr: ${err.trim().slice(-600)}`);
      }
    } else if (s.shown.length) {
      pass++;
    }
  });
  const skipped = steps.length - outs.size;
  console.log(`readme: ${blocks.length} blocks, ${steps.length} commands, ${shownCount} with output shown`);
  console.log(`readme: ${pass} passed, ${fail} failed${skipped ? `, ${skipped} skipped` : ''}`);
  process.exit(fail === 0 && skipped === 0 ? 0 : 1);
}

try {
  main();
} catch (e) {
  console.log(`FAIL ${e.message}`);
  process.exit(1);
}

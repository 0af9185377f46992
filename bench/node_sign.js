// Benchmark baseline: signs UserSigs with the official Node library tls-sig-api-v2 (genUserSig) on one
// core, writing "identifier\ttoken" lines to stdout in large batches, and reports the rate on stderr.
// Usage: node node_sign.js IDS_FILE SDKAPPID KEY_FILE EXPIRE > out.tsv
// The library is installed by `npm ci` in tests/node; the timed part is the sign loop plus its output.
'use strict';

const fs = require('fs');
const path = require('path');

const TLSSigAPIv2 = require(require.resolve('tls-sig-api-v2',
  { paths: [path.join(__dirname, '..', 'tests', 'node'), __dirname] }));

const BATCH = 4096; // lines joined into one write

function usage(msg) {
  process.stderr.write((msg ? msg + '\n' : '') +
    'usage: node node_sign.js IDS_FILE SDKAPPID KEY_FILE EXPIRE\n');
  process.exit(2);
}

function main() {
  const args = process.argv.slice(2);
  if (args.length !== 4) usage();
  const [idsFile, sdkappidArg, keyFile, expireArg] = args;
  const sdkappid = Number(sdkappidArg);
  const expire = Number(expireArg);
  if (!Number.isInteger(sdkappid) || sdkappid < 1 || sdkappid > 4294967295) usage('bad SDKAPPID');
  if (!Number.isInteger(expire) || expire < 1) usage('bad EXPIRE');

  const key = fs.readFileSync(keyFile, 'utf8').trim();
  if (key.length === 0) usage('empty key file');
  const ids = fs.readFileSync(idsFile, 'utf8').split('\n');
  if (ids.length && ids[ids.length - 1] === '') ids.pop();
  for (let i = 0; i < ids.length; i++) {
    if (ids[i].endsWith('\r')) ids[i] = ids[i].slice(0, -1);
  }

  const api = new TLSSigAPIv2.Api(sdkappid, key);
  const start = process.hrtime.bigint();
  let batch = [];
  for (let i = 0; i < ids.length; i++) {
    batch.push(ids[i] + '\t' + api.genUserSig(ids[i], expire));
    if (batch.length === BATCH) {
      process.stdout.write(batch.join('\n') + '\n');
      batch = [];
    }
  }
  const report = () => {
    const secs = Number(process.hrtime.bigint() - start) / 1e9;
    const rate = secs > 0 ? Math.round(ids.length / secs) : 0;
    process.stderr.write(`node: ${ids.length} tokens in ${secs.toFixed(3)} seconds = ${rate} tokens/s\n`);
  };
  // The clock stops once the last batch has been handed to the OS.
  process.stdout.write(batch.length ? batch.join('\n') + '\n' : '', report);
}

main();

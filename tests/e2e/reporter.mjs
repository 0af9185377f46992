// A node:test reporter for tests/e2e/run.sh: one line per finished test, "PASS name" or
// "FAIL name: first line of the reason", so that a run's verdict reads at a glance.
export default async function* failures(source) {
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const d = event.data;
    if (d.details && d.details.type === 'suite') continue;
    if (event.type === 'test:pass') {
      yield `PASS ${d.name}\n`;
      continue;
    }
    let err = d.details && d.details.error;
    while (err && err.cause && err.code === 'ERR_TEST_FAILURE') err = err.cause;
    const why = String((err && err.message) || err || 'failed').split('\n')[0].slice(0, 300);
    yield `FAIL ${d.name}: ${why}\n`;
  }
}

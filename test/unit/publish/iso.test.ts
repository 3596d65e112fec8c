import assert from 'node:assert/strict';
import { test } from 'node:test';
import { iso } from '../../../src/publish/document';

test('timestamps: the text Date#toISOString gives, for any ms (fractions, before 1970, past 9999)', () => {
  const samples = [0, 999, 1000, 1795603412129.75, -1, -1001.5, 253402300799999, 253402300800000, 8.64e15];
  let x = 1795603412129;
  for (let i = 0; i < 20000; i++) {
    x += ((i * 7919) % 1500) + 0.123; // forwards, across seconds, sometimes within one
    samples.push(x, x - 86_400_000 * (i % 3));
  }
  for (const ms of samples) assert.equal(iso(ms), new Date(ms).toISOString(), String(ms));
});

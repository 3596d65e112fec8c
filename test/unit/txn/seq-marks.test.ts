import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SeqMarks } from '../../../src/txn/seq-marks';

test('the timestamp of the event that carried a byte, across the 2^32 wrap', () => {
  const m = new SeqMarks();
  m.add(0xfffffff0, 32, 100); // bytes 0xfffffff0 .. 0x0000000f
  m.add(0x10, 10, 200);
  assert.equal(m.tsOf(0xfffffff0), 100);
  assert.equal(m.tsOf(0x5), 100);
  assert.equal(m.tsOf(0x10), 200);
  assert.equal(m.tsOf(0x19), 200);
  assert.equal(m.tsOf(0x1a), undefined, 'not seen yet');
  assert.equal(m.passed(0x1a), false);
  assert.equal(m.passed(0x5), true, 'seen bytes after it');
});

test('a byte never seen while later ones were is lost; trimming forgets what is done', () => {
  const m = new SeqMarks();
  m.add(1000, 100, 1);
  m.add(1200, 100, 3); // 1100..1199 never came
  assert.equal(m.tsOf(1150), undefined);
  assert.equal(m.passed(1150), true);
  m.trimBefore(1200);
  assert.equal(m.size, 1);
  assert.equal(m.tsOf(1250), 3);
});

test('bounded: the oldest marks go first, and are counted', () => {
  const m = new SeqMarks(3);
  for (let i = 0; i < 5; i++) m.add(i * 10, 10, i);
  assert.equal(m.size, 3);
  assert.equal(m.evicted, 2);
  assert.equal(m.tsOf(5), undefined);
  assert.equal(m.tsOf(45), 4);
});

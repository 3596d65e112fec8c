import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { createSlicer } from '../../../src/capture/slices';

/** A slicer on a clock the test moves, counting the calls to yieldIfIdle. */
function slicerOn(idle: boolean, sliceMs = 0.1) {
  let clock = 0;
  let asked = 0;
  const slicer = createSlicer(
    () => {
      asked++;
      return idle;
    },
    sliceMs,
    () => clock,
  );
  return {
    slicer,
    advance: (ms: number) => (clock += ms),
    asked: () => asked,
  };
}

describe('drain slices', () => {
  test('yields once a slice of work is over, then starts the next slice', () => {
    const s = slicerOn(true);
    s.slicer.begin();
    for (let i = 0; i < 8; i++) {
      s.advance(0.01);
      s.slicer.step();
    }
    assert.equal(s.asked(), 0, '0.08 ms of work: within the slice');
    for (let i = 0; i < 4; i++) {
      s.advance(0.01);
      s.slicer.step();
    }
    assert.equal(s.asked(), 1, '0.12 ms: the slice is over');
    assert.equal(s.slicer.yields(), 1);
    for (let i = 0; i < 4; i++) {
      s.advance(0.01);
      s.slicer.step();
    }
    assert.equal(s.asked(), 1, 'the next slice counts from the yield');
  });

  test('the clock is read every 4th event: a slice overshoots by at most 3 events', () => {
    const s = slicerOn(true);
    s.slicer.begin();
    s.advance(1);
    for (let i = 0; i < 3; i++) s.slicer.step();
    assert.equal(s.asked(), 0);
    s.slicer.step();
    assert.equal(s.asked(), 1);
  });

  test('a batch starts a slice of its own: the time between batches is no work', () => {
    const s = slicerOn(true);
    s.slicer.begin();
    for (let i = 0; i < 4; i++) s.slicer.step();
    s.advance(5); // asleep until the next drain
    s.slicer.begin();
    for (let i = 0; i < 4; i++) s.slicer.step();
    assert.equal(s.asked(), 0);
  });

  test('not under SCHED_IDLE: asked, but no yield counted', () => {
    const s = slicerOn(false);
    s.slicer.begin();
    s.advance(1);
    for (let i = 0; i < 8; i++) {
      s.slicer.step();
      s.advance(1);
    }
    assert.equal(s.asked(), 2);
    assert.equal(s.slicer.yields(), 0);
  });
});

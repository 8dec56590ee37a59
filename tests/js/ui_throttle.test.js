// ui/dom.js throttled: the cards redraw at most once per interval however often files change,
// and a change inside the interval is drawn at its end (fake clock).
import assert from "node:assert/strict";
import { mock, test } from "node:test";
import { throttled } from "../../static/swarm/ui/dom.js";

test("many changes in an interval give one draw now and one at its end", () => {
  mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 });
  try {
    let draws = 0;
    let state = 0;
    const seen = [];
    const draw = throttled(
      () => {
        draws += 1;
        seen.push(state);
      },
      500,
      () => Date.now(),
    );
    draw();
    assert.equal(draws, 1, "the first request draws at once");
    for (let i = 1; i <= 50; i++) {
      state = i;
      mock.timers.tick(5); // 50 progress changes, 5 ms apart (200 a second)
      draw();
    }
    assert.equal(draws, 1, "none more inside the interval");
    mock.timers.tick(250);
    assert.equal(draws, 2, "one at the end of the interval");
    assert.deepEqual(seen, [0, 50], "drawing the state of then, not of when it was asked");
    mock.timers.tick(2_000);
    assert.equal(draws, 2, "nothing more without a request");
    draw();
    assert.equal(draws, 3, "a request after a quiet interval draws at once");
  } finally {
    mock.timers.reset();
  }
});

// When the page makes its offline copy (adapters/offline.js whenSettled): after load, a
// settling delay and an idle moment, and not while files move (up to BUSY_MAX_MS), on a fake clock.
import assert from "node:assert/strict";
import { mock, test } from "node:test";
import { BUSY_MAX_MS, whenSettled } from "../../static/swarm/adapters/offline.js";

// Node's mock tick fires only the timers due when it starts: advance in small steps so that
// timers set by timers fire too.
function advance(ms) {
  for (let left = ms; left > 0; left -= Math.min(left, 100)) mock.timers.tick(Math.min(left, 100));
}

function page({ loaded = true } = {}) {
  const listeners = new Map();
  const win = {
    requestIdleCallback: (fn) => setTimeout(fn, 0),
    addEventListener: (type, fn) => listeners.set(type, fn),
  };
  return { doc: { readyState: loaded ? "complete" : "loading" }, win, load: () => listeners.get("load")?.() };
}

test("the offline copy waits for the page to settle, then for files to stop moving", () => {
  mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 });
  try {
    const { doc, win } = page();
    let busy = true;
    let ran = 0;
    whenSettled(
      () => (ran += 1),
      () => busy,
      { now: () => Date.now(), doc, win },
    );
    advance(2_999);
    assert.equal(ran, 0, "not in the first 3 s");
    advance(30_000);
    assert.equal(ran, 0, "not while a download or an upload is in progress");
    busy = false;
    advance(2_000);
    assert.equal(ran, 1, "once files stop moving (checked every 2 s)");
    advance(60_000);
    assert.equal(ran, 1, "once only");
  } finally {
    mock.timers.reset();
  }
});

test("files that never stop moving delay the offline copy by BUSY_MAX_MS at most", () => {
  mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 });
  try {
    const { doc, win, load } = page({ loaded: false });
    let ran = 0;
    whenSettled(
      () => (ran += 1),
      () => true,
      { now: () => Date.now(), doc, win },
    );
    advance(10_000);
    assert.equal(ran, 0, "nothing before the page has loaded");
    load();
    advance(3_000 + BUSY_MAX_MS - 1);
    assert.equal(ran, 0);
    advance(2_000);
    assert.equal(ran, 1, "made anyway once busy for BUSY_MAX_MS");
  } finally {
    mock.timers.reset();
  }
});

test("a page with nothing moving makes its copy once settled", () => {
  mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 });
  try {
    const { doc, win } = page();
    let ran = 0;
    whenSettled(() => (ran += 1), undefined, { now: () => Date.now(), doc, win });
    advance(3_000);
    assert.equal(ran, 1);
  } finally {
    mock.timers.reset();
  }
});

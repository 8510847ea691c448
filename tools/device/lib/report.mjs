/** The check's findings: one row per check, printed as they come and as a table at the end. */

export class Report {
  rows = [];
  started = Date.now();

  /** status: ok | FAIL | skip | info */
  add(check, status, detail) {
    const row = { check, status, detail: String(detail) };
    this.rows.push(row);
    console.log(`[${elapsed(this.started)}] ${status.padEnd(4)} ${check}: ${row.detail}`);
    return row;
  }

  get failed() {
    return this.rows.filter((r) => r.status === 'FAIL').length;
  }

  table() {
    const w = Math.max(...this.rows.map((r) => r.check.length), 5);
    const width = Math.min(process.stdout.columns || 120, 160);
    const lines = ['', `${'check'.padEnd(w)}  stat  result`, `${'─'.repeat(w)}  ────  ${'─'.repeat(Math.max(6, width - w - 8))}`];
    for (const r of this.rows) {
      const detail = r.detail.split('\n')[0];
      lines.push(`${r.check.padEnd(w)}  ${r.status.padEnd(4)}  ${detail}`);
    }
    lines.push('', `${this.rows.length} checks, ${this.failed} failed, in ${elapsed(this.started)}`);
    return lines.join('\n');
  }
}

export function elapsed(since) {
  const s = (Date.now() - since) / 1000;
  return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

/** `fn` with a deadline: rejects when it takes longer than `ms` (the work itself is not cancelled). */
export function withDeadline(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took longer than ${Math.round(ms / 1000)} s`)), ms);
      timer.unref?.();
    }),
  ]);
}

/** max |a − b| over the spread (max − min) of b. */
export function relativeError(a, b) {
  let lo = Infinity;
  let hi = -Infinity;
  let worst = 0;
  for (let i = 0; i < b.length; i++) {
    lo = Math.min(lo, b[i]);
    hi = Math.max(hi, b[i]);
    worst = Math.max(worst, Math.abs(a[i] - b[i]));
  }
  if (a.length !== b.length) return Infinity;
  return worst / Math.max(hi - lo, 1e-30);
}

export const concat = (arrays) => {
  const out = new Float32Array(arrays.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of arrays) {
    out.set(a, at);
    at += a.length;
  }
  return out;
};

export const fmt = (x, digits = 3) => (Number.isFinite(x) ? Number(x.toPrecision(digits)).toString() : String(x));

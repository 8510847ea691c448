/**
 * Loading progress on stderr. On a terminal: one bar per rank, redrawn in place
 * (`rank 0 [#####.....]  52%  120 MiB of 230 MiB`). Not on a terminal: at most one line per rank, when
 * it has read its share. Quiet (--json): nothing at all.
 */
import type { LoadProgressEvent } from '@tp/core';
import { formatBytes } from './format/units.js';
import type { CliIo } from './io.js';

const BAR_WIDTH = 20;
const REDRAW_MS = 80;

export type ProgressMode = 'bars' | 'lines' | 'quiet';

export function progressMode(io: CliIo, quiet: boolean): ProgressMode {
  if (quiet) return 'quiet';
  return io.isTty ? 'bars' : 'lines';
}

interface RankState {
  bytesRead: number;
  bytesTotal: number;
  done: boolean;
}

export class LoadProgressView {
  private readonly ranks: RankState[];
  private readonly started = Date.now();
  private drawn = false;
  private dirty = false;
  private lastDraw = 0;
  private closed = false;

  constructor(
    private readonly io: CliIo,
    private readonly mode: ProgressMode,
    world: number,
  ) {
    this.ranks = Array.from({ length: world }, () => ({ bytesRead: 0, bytesTotal: 0, done: false }));
  }

  /** Pass to initInference's onProgress. */
  readonly update = (event: LoadProgressEvent): void => {
    if (this.closed || this.mode === 'quiet') return;
    const state = this.ranks[event.rank];
    if (state === undefined) return;
    state.bytesRead = event.bytesRead;
    state.bytesTotal = event.bytesTotal;
    const finished = event.bytesTotal > 0 && event.bytesRead >= event.bytesTotal;
    if (this.mode === 'lines') {
      if (finished && !state.done) {
        state.done = true;
        this.io.stderr(`rank ${event.rank}: loaded ${formatBytes(event.bytesRead)} in ${((Date.now() - this.started) / 1000).toFixed(2)} s\n`);
      }
      return;
    }
    const newlyDone = finished && !state.done;
    if (finished) state.done = true;
    this.dirty = true;
    const now = Date.now();
    if (newlyDone || !this.drawn || now - this.lastDraw >= REDRAW_MS) this.draw(now);
  };

  /** Final state (all bars drawn as they ended); the cursor is left on a fresh line. */
  finish(): void {
    if (this.closed) return;
    if (this.mode === 'bars' && this.drawn && this.dirty) this.draw(Date.now());
    this.closed = true;
  }

  private draw(now: number): void {
    const lines = this.ranks.map((r, rank) => renderBar(rank, r.bytesRead, r.bytesTotal));
    // Move up over the previous drawing, then rewrite every line (clearing what was there).
    const up = this.drawn ? `\x1b[${this.ranks.length}A` : '';
    this.io.stderr(`${up}${lines.map((l) => `\r\x1b[2K${l}\n`).join('')}`);
    this.drawn = true;
    this.dirty = false;
    this.lastDraw = now;
  }
}

export function renderBar(rank: number, bytesRead: number, bytesTotal: number): string {
  const fraction = bytesTotal > 0 ? Math.min(1, bytesRead / bytesTotal) : 0;
  const filled = Math.round(fraction * BAR_WIDTH);
  const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
  const amount = bytesTotal > 0 ? `${formatBytes(bytesRead)} of ${formatBytes(bytesTotal)}` : 'starting';
  return `rank ${rank} [${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${percent}  ${amount}`;
}

/** Loading progress: bars redrawn in place on a terminal only; quiet with --json; lines otherwise. */
import { describe, expect, it, beforeAll } from 'vitest';
import { LoadProgressView, renderBar, type CliIo } from '../src/index.js';
import { runCli, tinyLlama } from './helpers.js';

let dir: string;
beforeAll(async () => {
  dir = await tinyLlama();
});

function capture(isTty: boolean) {
  let stderr = '';
  const io: CliIo = { stdout: () => undefined, stderr: (t) => void (stderr += t), isTty };
  return { io, text: () => stderr };
}

describe('loading progress', () => {
  it('renders a bar per rank: rank, bar, percent, bytes', () => {
    expect(renderBar(0, 52, 100)).toBe('rank 0 [##########..........]  52%  52 B of 100 B');
    expect(renderBar(3, 0, 0)).toBe('rank 3 [....................]   0%  starting');
  });

  it('on a terminal: bars redrawn in place (cursor up over the previous drawing)', () => {
    const { io, text } = capture(true);
    const view = new LoadProgressView(io, 'bars', 2);
    view.update({ rank: 0, bytesRead: 10, bytesTotal: 100 });
    view.update({ rank: 0, bytesRead: 100, bytesTotal: 100 });
    view.update({ rank: 1, bytesRead: 100, bytesTotal: 100 });
    view.finish();
    expect(text()).toContain('\r\x1b[2Krank 0 [##..................]  10%');
    expect(text()).toContain('\x1b[2A');
    expect(text().endsWith('\r\x1b[2Krank 0 [####################] 100%  100 B of 100 B\n\r\x1b[2Krank 1 [####################] 100%  100 B of 100 B\n')).toBe(true);
  });

  it('not a terminal: one line per rank when it finishes, no escape codes', () => {
    const { io, text } = capture(false);
    const view = new LoadProgressView(io, 'lines', 2);
    view.update({ rank: 1, bytesRead: 10, bytesTotal: 100 });
    view.update({ rank: 1, bytesRead: 100, bytesTotal: 100 });
    view.update({ rank: 1, bytesRead: 100, bytesTotal: 100 });
    view.finish();
    expect(text()).toMatch(/^rank 1: loaded 100 B in [\d.]+ s\n$/);
  });

  it('tp run shows bars only when isTty is true, and nothing with --json', async () => {
    const tty = await runCli(['run', dir, '--tp', '2', '--max-new-tokens', '2', 'Hi'], { isTty: true });
    expect(tty.code).toBe(0);
    expect(tty.stderr).toMatch(/\r\x1b\[2Krank 0 \[#+\.*\] +\d+%/);
    expect(tty.stderr).toMatch(/rank 1 \[#{20}\] 100%/);
    const plain = await runCli(['run', dir, '--tp', '2', '--max-new-tokens', '2', 'Hi'], { isTty: false });
    expect(plain.code).toBe(0);
    expect(plain.stderr).not.toContain('\x1b');
    expect(plain.stderr).not.toContain('[#');
    expect(plain.stderr.match(/^rank \d: loaded .*$/gm)?.sort()).toEqual([expect.stringMatching(/^rank 0: loaded/), expect.stringMatching(/^rank 1: loaded/)]);
    const json = await runCli(['run', dir, '--tp', '2', '--max-new-tokens', '2', '--json', 'Hi'], { isTty: true });
    expect(json.code).toBe(0);
    expect(json.stderr).toBe('');
  });
});

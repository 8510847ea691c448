/**
 * When one rank fails, the others stop and report that they stopped. A request must fail with the
 * failing rank's own error even when the others' notices arrive first (they do, on a loaded machine).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TpError } from '../../src/errors/index.js';
import { CAUSE_WAIT_MS, failWithCause, RankError } from '../../src/runtime/rank-errors.js';

/** What `fail` in a session does: the first error wins. */
function firstWins(): { fail: (e: Error) => void; failure: () => Error | undefined } {
  let failure: Error | undefined;
  return { fail: (e) => (failure ??= e), failure: () => failure };
}

const stopped = { message: 'rank 1 failed; rank 0 stopped before starting Dawn', code: 'rank-failed', fields: { rank: 1, op: 'starting Dawn' } };
const cause = { message: 'device 3 does not exist; tp devices lists 1', code: 'invalid-argument', fields: { argument: 'devices' } };

describe('failWithCause', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("a stopped rank's notice that arrives first still loses to the failing rank's own error", () => {
    const session = firstWins();
    failWithCause(0, stopped, session.fail);
    vi.advanceTimersByTime(CAUSE_WAIT_MS - 1);
    expect(session.failure()).toBeUndefined();
    failWithCause(1, cause, session.fail);
    vi.runAllTimers();
    const error = session.failure() as RankError;
    expect(error).toBeInstanceOf(RankError);
    expect(error.code).toBe('invalid-argument');
    expect(error.rank).toBe(1);
    expect(error.message).toBe('rank 1: device 3 does not exist; tp devices lists 1');
    expect((error as unknown as { argument: string }).argument).toBe('devices');
  });

  it('when the failing rank never reports, the notice naming it is the error, after the wait', () => {
    const session = firstWins();
    failWithCause(0, stopped, session.fail);
    vi.advanceTimersByTime(CAUSE_WAIT_MS);
    const error = session.failure()!;
    expect(TpError.isInstance(error)).toBe(true);
    expect((error as TpError).code).toBe('rank-failed');
    expect((error as unknown as { rank: number }).rank).toBe(1);
    expect(error.message).toBe('rank 1 failed; rank 0 stopped before starting Dawn');
  });

  it('a plain error from a rank fails at once, naming the rank', () => {
    const session = firstWins();
    failWithCause(2, { message: 'out of memory in matmul' }, session.fail);
    const error = session.failure()!;
    expect((error as TpError).code).toBe('rank-failed');
    expect(error.message).toBe('rank 2: out of memory in matmul');
  });
});

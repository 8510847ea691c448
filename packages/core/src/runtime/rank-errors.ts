/**
 * The error a session's request fails with, rebuilt from what a rank sent — and, when several ranks
 * report, which report wins: the rank that failed, not the ones that stopped because of it.
 */
import { RankFailedError } from '../backend/index.js';
import { TpError, type TpErrorCode } from '../errors/index.js';
import type { WorkerError } from './messages.js';

/** With TP_DEBUG set, a rank's error carries its stack. */
function debugMessage(e: WorkerError): string {
  // No `process` in a browser (the page's coordinator, web-session.ts, rebuilds errors here too).
  const debug = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.['TP_DEBUG'];
  return debug && e.stack ? `${e.message}\n${e.stack}` : e.message;
}

/** How long a rank that only stopped because another failed waits for that rank's own report. */
export const CAUSE_WAIT_MS = 5_000;

/**
 * Fail with a rank's error. A rank that only stopped because another failed gives the failing rank's
 * own report time to arrive first, so the request fails with the real cause (`fail` keeps the first
 * error it gets); on a loaded machine that report can come well after the other ranks' notices.
 */
export function failWithCause(rank: number, e: WorkerError, fail: (error: Error) => void): void {
  const error = rankError(rank, e);
  if (isSecondary(rank, e)) setTimeout(() => fail(error), CAUSE_WAIT_MS);
  else fail(error);
}

/** A rank that stopped in a collective because another rank failed first. */
function isSecondary(rank: number, e: WorkerError): boolean {
  return e.code === 'rank-failed' && typeof e.fields?.['rank'] === 'number' && e.fields['rank'] !== rank;
}

/**
 * The error a request fails with, rebuilt from what the rank sent. A rank that stopped because another
 * failed, or that timed out waiting for another, names that other rank. An error of tp's own keeps its
 * code and fields (and says which rank raised it); anything else is a `rank-failed` naming the rank.
 */
export function rankError(rank: number, e: WorkerError): Error {
  const message = debugMessage(e);
  if (e.code === 'rank-failed' || e.code === 'timeout') {
    const culprit = typeof e.fields?.['rank'] === 'number' && e.fields['rank'] >= 0 ? e.fields['rank'] : rank;
    const op = typeof e.fields?.['op'] === 'string' ? e.fields['op'] : 'request';
    return new RankFailedError(e.code, culprit, op, isSecondary(rank, e) ? message : `rank ${rank}: ${message}`);
  }
  if (e.code !== undefined) return new RankError(e.code as TpErrorCode, rank, `rank ${rank}: ${message}`, e.fields ?? {});
  return new RankFailedError('rank-failed', rank, 'request', `rank ${rank}: ${message}`);
}

/** An error of tp's own raised inside a rank: its code and fields, and the rank. */
export class RankError extends TpError {
  readonly rank: number;

  constructor(code: TpErrorCode, rank: number, message: string, fields: Record<string, unknown>) {
    super(code, message);
    Object.assign(this, fields);
    this.name = 'RankError';
    this.rank = rank;
  }
}

/**
 * Every error the checkpoint, graph and plan code throws on purpose is a TpError with a code: the
 * writer's argument checks, conversions without a float meaning, and broken invariants (`internal`).
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bytesToF32, encodeSafetensorsHeader, fusedQkvRanges, InternalError, TpError, writeSafetensors } from '../../src/index.js';
import { expectTpError, patterned, useTempDirs } from '../helpers/files.js';

const tempDir = useTempDirs();

describe('errors are TpErrors with codes', () => {
  it('a name used twice in a header to write is an invalid argument', async () => {
    await expectTpError(() => encodeSafetensorsHeader([patterned('w', 'F32', [1]), patterned('w', 'F32', [1])]), { code: 'invalid-argument', name: 'ArgumentError' });
  });

  it('tensor data of the wrong length is a length-mismatch naming the file and the tensor', async () => {
    const file = path.join(await tempDir(), 'model.safetensors');
    await expectTpError(() => writeSafetensors(file, [{ name: 'w', dtype: 'F32', shape: [4], data: new Uint8Array(12) }]), {
      code: 'length-mismatch',
      name: 'CheckpointError',
      file: 'model.safetensors',
      tensor: 'w',
    });
  });

  it('converting a type without a float meaning to f32 is dtype-unsupported', async () => {
    const e = await expectTpError(() => bytesToF32(new Uint8Array(8), 'I32'), { code: 'dtype-unsupported', name: 'DtypeError', tensor: undefined });
    expect(e['dtype']).toBe('I32');
  });

  it('a broken invariant is an internal error that says it is a bug', async () => {
    const heads = { heads: 4, kvHeads: 4, tp: 1, kvReplicated: false, ranks: [{ q: [0, 4], kv: [0, 4] }] };
    const e = await expectTpError(
      () => fusedQkvRanges('gate-up', { size: 12, heads: heads as never, name: 'w' }, heads.ranks[0] as never, 0, 1),
      { code: 'internal', name: 'InternalError' },
    );
    expect(e.message).toContain('bug');
    expect(TpError.isInstance(new InternalError('x'))).toBe(true);
  });
});

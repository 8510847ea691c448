/**
 * A checkpoint folder: config.json plus either model.safetensors, or model.safetensors.index.json and
 * the shards it names. Opening reads the config and every header; no weight byte is read until a
 * caller asks for a slice. (A checkpoint that is not a folder on this machine, e.g. files served over
 * HTTP, opens from byte sources instead: source-checkpoint.ts.)
 */
import { CheckpointError, ConfigError } from '../errors/index.js';
import { checkWeightMap, parseConfig, tensorLookup, tensorsByName } from './assemble.js';
import { nodeModules } from './node-fs.js';
import { readSafetensorsHeader, type SafetensorsHeader, type TensorInfo } from './safetensors.js';

export type HfConfig = Record<string, unknown>;

export interface Checkpoint {
  readonly dir: string;
  readonly configPath: string;
  readonly config: HfConfig;
  /** One entry per safetensors file, in the order they were listed. */
  readonly files: readonly SafetensorsHeader[];
  /** Every tensor of every file, by name. */
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  /** Fails with a CheckpointError naming the tensor when it is absent. */
  tensor(name: string): TensorInfo;
  /**
   * Read `length` bytes at `offset` of `file` into `into` (at `intoOffset`). Every weight byte tp reads
   * goes through here, so `bytesRead` is the exact count of weight bytes taken from disk. (A checkpoint
   * opened from byte sources serves here what its `prefetch` fetched: source-checkpoint.ts.)
   */
  readBytes(file: string, offset: number, length: number, into: Uint8Array, intoOffset: number): void;
  readonly bytesRead: number;
  /** Things that are allowed but odd (e.g. a shard tensor the index does not list). */
  readonly warnings: readonly string[];
  close(): void;
}

const INDEX_FILE = 'model.safetensors.index.json';
const SINGLE_FILE = 'model.safetensors';
const PICKLE_SUFFIXES = ['.bin', '.pt', '.pth', '.ckpt', '.pkl'];

export async function openCheckpoint(dir: string): Promise<Checkpoint> {
  const { fsp, path } = nodeModules('openCheckpoint');
  const root = path.resolve(dir);
  const info = await fsp.stat(root).catch(() => undefined);
  if (info === undefined) {
    throw new CheckpointError('file-not-found', { file: root, detail: 'no such folder', hint: 'Pass the folder that holds config.json and the *.safetensors files' });
  }
  if (!info.isDirectory()) {
    throw new CheckpointError('not-a-directory', { file: root, detail: 'is a file, not a folder', hint: 'Pass the folder that holds config.json and the *.safetensors files' });
  }
  const configPath = path.join(root, 'config.json');
  const config = await readConfig(configPath);
  const weightFiles = await findWeightFiles(root);
  const files: SafetensorsHeader[] = [];
  for (const file of weightFiles.files) files.push(await readSafetensorsHeader(file));

  const tensors = tensorsByName(files);
  const warnings = weightFiles.weightMap === undefined ? [] : checkWeightMap(tensors, weightFiles.weightMap, path.join(root, INDEX_FILE));
  return createCheckpoint(root, configPath, config, files, tensors, warnings);
}

async function readConfig(configPath: string): Promise<HfConfig> {
  let text: string;
  try {
    text = await nodeModules('openCheckpoint').fsp.readFile(configPath, 'utf8');
  } catch {
    throw new ConfigError('config-invalid', { file: configPath, detail: 'not found. A checkpoint folder needs the config.json written by save_pretrained' });
  }
  return parseConfig(text, configPath);
}

interface WeightFiles {
  files: string[];
  /** tensor name → absolute shard path, when an index was present */
  weightMap?: Map<string, string>;
}

async function findWeightFiles(root: string): Promise<WeightFiles> {
  const { fsp, path } = nodeModules('openCheckpoint');
  const entries = await fsp.readdir(root);
  if (entries.includes(INDEX_FILE)) return readIndex(root);
  if (entries.includes(SINGLE_FILE)) return { files: [path.join(root, SINGLE_FILE)] };
  const shards = entries.filter((e) => e.endsWith('.safetensors')).sort();
  if (shards.length > 0) return { files: shards.map((s) => path.join(root, s)) };
  const pickles = entries.filter((e) => PICKLE_SUFFIXES.some((s) => e.endsWith(s)));
  if (pickles.length > 0) {
    throw new CheckpointError('pickle-refused', {
      file: path.join(root, pickles[0]!),
      detail:
        'is a PyTorch pickle. tp reads only safetensors: loading a pickle runs arbitrary code stored in the file',
      hint:
        'Convert it once with Python: `from transformers import AutoModel; m = AutoModel.from_pretrained(DIR); ' +
        'm.save_pretrained(DIR, safe_serialization=True)`, or use a safetensors revision of the model from the Hub',
    });
  }
  throw new CheckpointError('no-weights', {
    file: root,
    detail: `holds no ${SINGLE_FILE}, ${INDEX_FILE} or *.safetensors file`,
    hint: 'Point tp at a Hugging Face checkpoint folder',
  });
}

async function readIndex(root: string): Promise<WeightFiles> {
  const { fsp, path } = nodeModules('openCheckpoint');
  const indexPath = path.join(root, INDEX_FILE);
  let json: unknown;
  try {
    json = JSON.parse(await fsp.readFile(indexPath, 'utf8'));
  } catch (cause) {
    throw new CheckpointError('index-invalid', { file: indexPath, detail: `is not valid JSON (${(cause as Error).message})` }, { cause });
  }
  const weightMap = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new CheckpointError('index-invalid', { file: indexPath, detail: 'has no "weight_map" object' });
  }
  const realRoot = await fsp.realpath(root);
  const resolved = new Map<string, string>();
  const byFile = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(weightMap)) {
    if (typeof shard !== 'string' || shard.length === 0) {
      throw new CheckpointError('index-invalid', { file: indexPath, tensor, detail: `weight_map value ${JSON.stringify(shard)} must be a file name` });
    }
    let file = byFile.get(shard);
    if (file === undefined) {
      file = await resolveShard(root, realRoot, shard, indexPath, tensor);
      byFile.set(shard, file);
    }
    resolved.set(tensor, file);
  }
  return { files: [...new Set(byFile.values())], weightMap: resolved };
}

/** A shard must be a file inside the model folder: never an absolute path, `..`, or a link out. */
async function resolveShard(root: string, realRoot: string, shard: string, indexPath: string, tensor: string): Promise<string> {
  const { fsp, path } = nodeModules('openCheckpoint');
  const escapes = () =>
    new CheckpointError('index-escapes-folder', {
      file: indexPath,
      tensor,
      detail: `weight_map points to "${shard}", which is outside the model folder`,
      hint: 'Shards must be files inside the checkpoint folder; a crafted index could otherwise read any file',
    });
  if (path.isAbsolute(shard)) throw escapes();
  const file = path.resolve(root, shard);
  if (!isInside(root, file)) throw escapes();
  const real = await fsp.realpath(file).catch(() => undefined);
  if (real === undefined) {
    throw new CheckpointError('index-missing-shard', {
      file: indexPath,
      tensor,
      detail: `weight_map names shard "${shard}", which does not exist`,
      hint: 'Download every shard listed in the index',
    });
  }
  if (!isInside(realRoot, real)) throw escapes();
  return file;
}

/** True when `file` lies inside `dir` (a shard may be called `..model.safetensors`; `../model` may not). */
function isInside(dir: string, file: string): boolean {
  const { path } = nodeModules('openCheckpoint');
  const rel = path.relative(dir, file);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
}

function createCheckpoint(
  dir: string,
  configPath: string,
  config: HfConfig,
  files: SafetensorsHeader[],
  tensors: Map<string, TensorInfo>,
  warnings: string[],
): Checkpoint {
  const { fs } = nodeModules('openCheckpoint');
  const fds = new Map<string, number>();
  let bytesRead = 0;
  const fdFor = (file: string) => {
    let fd = fds.get(file);
    if (fd === undefined) {
      fd = fs.openSync(file, 'r');
      fds.set(file, fd);
    }
    return fd;
  };
  return {
    dir,
    configPath,
    config,
    files,
    tensors,
    warnings,
    tensor: tensorLookup(tensors, dir),
    readBytes(file, offset, length, into, intoOffset) {
      const fd = fdFor(file);
      let done = 0;
      while (done < length) {
        const n = fs.readSync(fd, into, intoOffset + done, length - done, offset + done);
        if (n === 0) {
          throw new CheckpointError('read-failed', { file, detail: `unexpected end of file at byte ${offset + done}`, hint: 'The file changed or was truncated after it was opened' });
        }
        done += n;
      }
      bytesRead += length;
    },
    get bytesRead() {
      return bytesRead;
    },
    close() {
      for (const fd of fds.values()) fs.closeSync(fd);
      fds.clear();
    },
  };
}

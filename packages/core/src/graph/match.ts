/**
 * Dotted-name suffix patterns: `self_attn.q_proj` matches `model.layers.3.self_attn.q_proj`;
 * `#` matches one number segment, `*` any one segment. Matching is on whole segments only.
 */
export type SuffixPattern = readonly string[];

export function compileSuffix(pattern: string): SuffixPattern {
  return pattern.split('.');
}

export function matchesSuffix(pattern: SuffixPattern, segments: readonly string[]): boolean {
  if (pattern.length > segments.length) return false;
  const offset = segments.length - pattern.length;
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    const s = segments[offset + i]!;
    if (p === '*') continue;
    if (p === '#') {
      if (!/^\d+$/.test(s)) return false;
      continue;
    }
    if (p !== s) return false;
  }
  return true;
}

/** Replace every number segment by `*`: `model.layers.3.mlp` → `model.layers.*.mlp`. */
export function genericName(name: string): string {
  return name
    .split('.')
    .map((s) => (/^\d+$/.test(s) ? '*' : s))
    .join('.');
}

/** How deeply a JSON body may nest: the deepest legitimate one (a client's JWK Set) needs 4 levels. */
const MAX_JSON_DEPTH = 16;

/** The first thing in `root` (a parsed query or body) that must never reach a handler, described for the caller. */
export function inputProblem(root: unknown, rootPath: string, json: boolean): string | undefined {
  // Iterative, so that the walk itself cannot overflow the stack.
  const stack: [unknown, string, number][] = [[root, rootPath, 0]];
  while (stack.length) {
    const [value, path, depth] = stack.pop()!;
    if (typeof value === 'string') {
      if (value.includes('\0')) return `${path || 'the request body'} must not contain the character U+0000`;
      continue;
    }
    if (!value || typeof value !== 'object') continue;
    if (json && depth >= MAX_JSON_DEPTH) return `the request body must not nest deeper than ${MAX_JSON_DEPTH} levels`;
    for (const [key, child] of Object.entries(value)) {
      if (key.includes('\0')) return `${path || 'the request body'} must not contain the character U+0000`;
      const at = path ? `${path}.${key}` : key;
      if (json && key in Object.prototype) return `property ${at} should not exist`;
      stack.push([child, at, depth + 1]);
    }
  }
  return undefined;
}

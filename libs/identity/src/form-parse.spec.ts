import { parse as qsParse } from 'qs';
import { FORM_PARAMETER_LIMIT, parseUrlencoded } from './form-parse';

/** What qs alone answers, with body-parser's options (`urlencoded({ extended: false })`): the reference. */
function reference(text: string): Record<string, unknown> | 'refused' {
  if (!text.length) return {};
  const count = text.split('&').length;
  if (count > FORM_PARAMETER_LIMIT) return 'refused';
  try {
    return qsParse(text, { allowPrototypes: true, arrayLimit: count, depth: 0, charset: 'utf-8', parameterLimit: FORM_PARAMETER_LIMIT, strictDepth: true }) as Record<string, unknown>;
  } catch {
    return 'refused';
  }
}

function ours(text: string): Record<string, unknown> | 'refused' {
  try {
    return parseUrlencoded(text);
  } catch (err) {
    expect((err as { code?: string }).code).toBe('invalid_request');
    return 'refused';
  }
}

function same(text: string): void {
  const a = ours(text);
  const b = reference(text);
  try {
    expect(a).toStrictEqual(b);
    if (a !== 'refused' && b !== 'refused') {
      expect(Object.getPrototypeOf(a)).toBe(Object.getPrototypeOf(b));
      expect(Object.keys(a)).toEqual(Object.keys(b));
    }
  } catch (err) {
    throw new Error(`differs from qs on ${JSON.stringify(text)}: ${(err as Error).message}`);
  }
}

describe('parseUrlencoded', () => {
  it('reads a plain form', () => {
    expect(parseUrlencoded('grant_type=client_credentials&audience=https%3A%2F%2Fapi.example.com%2Forders&scope=read+write')).toEqual({
      grant_type: 'client_credentials',
      audience: 'https://api.example.com/orders',
      scope: 'read write',
    });
  });

  const cases = [
    '', 'a', 'a=', '=a', '&', '&&a=1&&', 'a=1&a=2', 'a=1&b=2&a=3', 'a[]=1', 'a%5B%5D=1', 'a%5bb%5d=1', '[a]=1', 'a]=1', 'a=[1]',
    '__proto__=1', '__proto__[x]=1', 'constructor=1', 'toString=x&a=1', 'hasOwnProperty=1', 'a=%', 'a=%E0%A4%A', 'a=%ZZ+b', '%=1',
    'a&b=1&c', 'a&&b&c=', 'a+b=c+d', 'a%20b=c%2Bd', 'a=%E2%9C%93', 'utf8=%E2%9C%93&a=1', 'a=b=c', 'a==', '%00=1', 'a=%00', 'a.b=1', 'é=ü', 'a=1;b=2',
    Array.from({ length: FORM_PARAMETER_LIMIT }, (_, i) => `p${i}=${i}`).join('&'),
    Array.from({ length: FORM_PARAMETER_LIMIT + 1 }, (_, i) => `p${i}=${i}`).join('&'),
    Array.from({ length: 30 }, () => 'a=1').join('&'),
  ];
  it.each(cases.map((c) => [c.length > 40 ? `${c.slice(0, 40)}… (${c.length} chars)` : c, c]))('answers %j as qs does', (_, text) => same(text));

  it('answers as qs does on 20,000 random forms', () => {
    const pieces = ['a', 'b', 'scope', '=', '=', '&', '&', '+', '%', '%2', '%41', '%2B', '%26', '%3D', '%E2%9C%93', '%ZZ', '%C3', '[', ']', '[]', '%5B', '%5d', '__proto__', 'constructor', 'valueOf', '.', 'é', ' ', '\u0000'];
    let seed = 42;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let i = 0; i < 20_000; i++) {
      let text = '';
      const len = rand(12);
      for (let j = 0; j < len; j++) text += pieces[rand(pieces.length)];
      same(text);
    }
  });
});

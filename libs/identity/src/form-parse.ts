import { parse as qsParse } from 'qs';
import { invalidRequest } from '@idp/core';

/** Parameters of a form body at most (the Express parser's `parameterLimit` in boot.ts too). */
export const FORM_PARAMETER_LIMIT = 100;

/** Anything qs reads as structure (brackets, raw or percent-encoded): such a body goes to qs itself. */
const STRUCTURED = /[[\]]|%5[bd]/i;
const hasOwn = Object.prototype.hasOwnProperty;

/**
 * body-parser's `urlencoded({ extended: false })` parse, with the same qs options and limits, so
 * a form means the same on both paths. A body of plain `name=value` pairs, each name once and none
 * of them a property of Object.prototype (what every OAuth client sends), is read here in one
 * pass; any other body is handed to qs. form-parse.spec.ts holds the two to the same answer on
 * chosen and random bodies.
 */
export function parseUrlencoded(text: string): Record<string, unknown> {
  if (!text.length) return {};
  let count = 0;
  let at = -1;
  do {
    if (++count > FORM_PARAMETER_LIMIT) throw invalidRequest('the request body could not be parsed');
    at = text.indexOf('&', at + 1);
  } while (at !== -1);
  if (!STRUCTURED.test(text)) {
    const plain = parsePlain(text);
    if (plain) return plain;
  }
  try {
    return qsParse(text, { allowPrototypes: true, arrayLimit: count, depth: 0, charset: 'utf-8', parameterLimit: FORM_PARAMETER_LIMIT, strictDepth: true }) as Record<string, unknown>;
  } catch {
    throw invalidRequest('the request body could not be parsed');
  }
}

/** The pairs of a body without structure, or null when a name repeats or is a property of Object.prototype. */
function parsePlain(text: string): Record<string, string> | null {
  const out: Record<string, string> = {};
  let nextEq = -1; // the first '=' at or after the current pair (text.length when there is none): one scan in all
  for (let start = 0; start <= text.length; ) {
    let end = text.indexOf('&', start);
    if (end === -1) end = text.length;
    if (nextEq < start) {
      nextEq = text.indexOf('=', start);
      if (nextEq === -1) nextEq = text.length;
    }
    const eq = nextEq < end ? nextEq : -1;
    const key = decode(text.slice(start, eq === -1 ? end : eq));
    if (key !== '') {
      // qs makes an array of a repeated name and guards prototype names: its answer is the reference there
      if (hasOwn.call(out, key) || hasOwn.call(Object.prototype, key)) return null;
      out[key] = eq === -1 ? '' : decode(text.slice(eq + 1, end));
    }
    start = end + 1;
  }
  return out;
}

/** qs's UTF-8 decoder: `+` is a space, percent escapes are decoded, a malformed one leaves the text as it is. */
function decode(s: string): string {
  const spaced = s.indexOf('+') === -1 ? s : s.replace(/\+/g, ' ');
  if (spaced.indexOf('%') === -1) return spaced;
  try {
    return decodeURIComponent(spaced);
  } catch {
    return spaced;
  }
}

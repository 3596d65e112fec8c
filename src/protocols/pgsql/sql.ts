/**
 * SQL text helpers: splitting a simple-query string into the statements the
 * server will run (as PostgreSQL and psql lex it: quotes, E'' strings,
 * "identifiers", $tag$ bodies, -- and nested block comments, and BEGIN ... END
 * bodies of CREATE FUNCTION/PROCEDURE), and the statement's first keyword.
 * Works on the message's bytes; only ASCII bytes are significant, so UTF-8
 * text needs no decoding.
 */

/** One statement of a query string. */
export interface StatementRange {
  /** Its text without surrounding whitespace and without the ';': [start, end). */
  start: number;
  end: number;
  /** Where the bytes it owns begin (the first statement owns from the string's start). */
  segStart: number;
}

const SEMI = 0x3b;
const SQUOTE = 0x27;
const DQUOTE = 0x22;
const DOLLAR = 0x24;
const DASH = 0x2d;
const SLASH = 0x2f;
const STAR = 0x2a;
const BACKSLASH = 0x5c;
const LPAREN = 0x28;
const RPAREN = 0x29;
const LF = 0x0a;

function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

function isIdentStart(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f || c >= 0x80;
}

function isIdentChar(c: number): boolean {
  return isIdentStart(c) || (c >= 0x30 && c <= 0x39) || c === DOLLAR;
}

/** Case-insensitive compare of buf[s, e) with a lower-case ASCII word. */
function wordIs(buf: Buffer, s: number, e: number, word: string): boolean {
  if (e - s !== word.length) return false;
  for (let k = 0; k < word.length; k++) {
    if (((buf[s + k] as number) | 0x20) !== word.charCodeAt(k)) return false;
  }
  return true;
}

/** Index just past the end of the string/identifier/comment starting at i, or `to` if unterminated. */
function skipQuoted(buf: Buffer, i: number, to: number, quote: number, backslashEscapes: boolean): number {
  let j = i + 1;
  for (;;) {
    const q = buf.indexOf(quote, j);
    if (q < 0 || q >= to) return to;
    if (backslashEscapes) {
      let b = 0;
      for (let k = q - 1; k > i && buf[k] === BACKSLASH; k--) b++;
      if (b % 2 === 1) {
        j = q + 1;
        continue;
      }
    }
    if (q + 1 < to && buf[q + 1] === quote) {
      j = q + 2; // doubled quote
      continue;
    }
    return q + 1;
  }
}

function skipBlockComment(buf: Buffer, i: number, to: number): number {
  let depth = 1;
  let j = i + 2;
  while (j < to) {
    const c = buf[j];
    if (c === STAR && buf[j + 1] === SLASH && j + 1 < to) {
      depth--;
      j += 2;
      if (depth === 0) return j;
    } else if (c === SLASH && buf[j + 1] === STAR && j + 1 < to) {
      depth++;
      j += 2;
    } else {
      j++;
    }
  }
  return to;
}

/** A $tag$ opening at i: the index past it, or -1. */
function dollarTagEnd(buf: Buffer, i: number, to: number): number {
  let j = i + 1;
  if (j < to && buf[j] === DOLLAR) return j + 1;
  if (j >= to || !isIdentStart(buf[j] as number)) return -1;
  j++;
  while (j < to) {
    const c = buf[j] as number;
    if (c === DOLLAR) return j + 1;
    if (!isIdentStart(c) && !(c >= 0x30 && c <= 0x39)) return -1;
    j++;
  }
  return -1;
}

/** First-word codes for the CREATE [OR REPLACE] FUNCTION|PROCEDURE test. */
const W_CREATE = 1;
const W_OR = 2;
const W_REPLACE = 3;
const W_ROUTINE = 4;
const W_OTHER = 9;

/** Splits buf[from, to) into statements; empty ones (only spaces, comments, ';') are left out. */
export function splitStatements(buf: Buffer, from: number, to: number): StatementRange[] {
  const out: StatementRange[] = [];
  let segStart = from;
  let textStart = -1;
  let textEnd = -1;
  let hasContent = false;
  let words = 0;
  let w0 = 0;
  let w1 = 0;
  let w2 = 0;
  let w3 = 0;
  let parens = 0;
  let beginDepth = 0;
  let prev = 0x20; // byte before i that is not inside a token we skipped

  const finish = (i: number) => {
    if (hasContent) {
      out.push({ start: textStart, end: textEnd, segStart });
      segStart = i;
    }
    textStart = -1;
    textEnd = -1;
    hasContent = false;
    words = 0;
    w0 = w1 = w2 = w3 = 0;
    parens = 0;
    beginDepth = 0;
  };
  const mark = (s: number, e: number, content: boolean) => {
    if (textStart < 0) textStart = s;
    textEnd = e;
    if (content) hasContent = true;
  };

  let i = from;
  while (i < to) {
    const c = buf[i] as number;
    if (isSpace(c)) {
      prev = c;
      i++;
      continue;
    }
    if (c === SEMI && beginDepth === 0) {
      finish(i + 1);
      prev = c;
      i++;
      continue;
    }
    let e: number;
    if (c === SQUOTE) {
      const escapes = (prev === 0x45 || prev === 0x65) && i - 1 >= from && (i - 2 < from || !isIdentChar(buf[i - 2] as number));
      e = skipQuoted(buf, i, to, SQUOTE, escapes);
      mark(i, e, true);
    } else if (c === DQUOTE) {
      e = skipQuoted(buf, i, to, DQUOTE, false);
      mark(i, e, true);
      words++;
    } else if (c === DASH && i + 1 < to && buf[i + 1] === DASH) {
      const nl = buf.indexOf(LF, i + 2);
      e = nl < 0 || nl >= to ? to : nl;
      mark(i, e, false);
    } else if (c === SLASH && i + 1 < to && buf[i + 1] === STAR) {
      e = skipBlockComment(buf, i, to);
      mark(i, e, false);
    } else if (c === DOLLAR && !isIdentChar(prev)) {
      const tagEnd = dollarTagEnd(buf, i, to);
      if (tagEnd < 0) {
        e = i + 1;
      } else {
        const close = buf.indexOf(buf.subarray(i, tagEnd), tagEnd);
        e = close < 0 || close + (tagEnd - i) > to ? to : close + (tagEnd - i);
      }
      mark(i, e, true);
    } else if (isIdentStart(c) && !isIdentChar(prev)) {
      e = i + 1;
      while (e < to && isIdentChar(buf[e] as number)) e++;
      mark(i, e, true);
      // CREATE [OR REPLACE] FUNCTION|PROCEDURE bodies may hold BEGIN ... END with ';' inside
      if (words < 4) {
        const code = wordIs(buf, i, e, 'create')
          ? W_CREATE
          : wordIs(buf, i, e, 'or')
            ? W_OR
            : wordIs(buf, i, e, 'replace')
              ? W_REPLACE
              : wordIs(buf, i, e, 'function') || wordIs(buf, i, e, 'procedure')
                ? W_ROUTINE
                : W_OTHER;
        if (words === 0) w0 = code;
        else if (words === 1) w1 = code;
        else if (words === 2) w2 = code;
        else w3 = code;
      }
      words++;
      const routine = w0 === W_CREATE && (w1 === W_ROUTINE || (w1 === W_OR && w2 === W_REPLACE && w3 === W_ROUTINE));
      if (routine && parens === 0) {
        if (wordIs(buf, i, e, 'begin')) beginDepth++;
        else if (wordIs(buf, i, e, 'case')) {
          if (beginDepth > 0) beginDepth++;
        } else if (wordIs(buf, i, e, 'end') && beginDepth > 0) beginDepth--;
      }
    } else {
      if (c === LPAREN) parens++;
      else if (c === RPAREN && parens > 0) parens--;
      e = i + 1;
      mark(i, e, true);
    }
    prev = buf[e - 1] as number;
    i = e;
  }
  finish(to);
  return out;
}

/**
 * The statement's first keyword, upper-cased ("SELECT", "INSERT", "WITH"):
 * leading spaces, comments and parentheses are skipped. Empty when there is none.
 */
export function firstKeyword(query: string): string {
  let i = 0;
  const n = query.length;
  while (i < n) {
    const c = query.charCodeAt(i);
    if (isSpace(c) || c === LPAREN) {
      i++;
    } else if (c === DASH && query.charCodeAt(i + 1) === DASH) {
      const nl = query.indexOf('\n', i + 2);
      i = nl < 0 ? n : nl + 1;
    } else if (c === SLASH && query.charCodeAt(i + 1) === STAR) {
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (query.charCodeAt(i) === STAR && query.charCodeAt(i + 1) === SLASH) {
          depth--;
          i += 2;
        } else if (query.charCodeAt(i) === SLASH && query.charCodeAt(i + 1) === STAR) {
          depth++;
          i += 2;
        } else i++;
      }
    } else break;
  }
  let e = i;
  while (e < n) {
    const c = query.charCodeAt(e);
    if ((c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f) e++;
    else break;
  }
  return query.slice(i, e).toUpperCase();
}

/**
 * http.*.mime_type from the body's content (ECS: never from Content-Type), as
 * the WHATWG sniffing algorithm does it (the rules Go's DetectContentType and
 * so Packetbeat follow): markup, binary signatures, else text or octet-stream.
 * Only bodies the agent kept are sniffed (include_body_for, forms).
 */

const HTML_TAGS = ['<!DOCTYPE HTML', '<HTML', '<HEAD', '<SCRIPT', '<IFRAME', '<H1', '<DIV', '<FONT', '<TABLE', '<A', '<STYLE', '<TITLE', '<B', '<BODY', '<BR', '<P', '<!--'];

const SIGNATURES: Array<[number[], string]> = [
  [[0x25, 0x50, 0x44, 0x46, 0x2d], 'application/pdf'],
  [[0x25, 0x21, 0x50, 0x53, 0x2d, 0x41, 0x64, 0x6f, 0x62, 0x65, 0x2d], 'application/postscript'],
  [[0x47, 0x49, 0x46, 0x38, 0x37, 0x61], 'image/gif'],
  [[0x47, 0x49, 0x46, 0x38, 0x39, 0x61], 'image/gif'],
  [[0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'image/png'],
  [[0xff, 0xd8, 0xff], 'image/jpeg'],
  [[0x42, 0x4d], 'image/bmp'],
  [[0x1f, 0x8b, 0x08], 'application/x-gzip'],
  [[0x50, 0x4b, 0x03, 0x04], 'application/zip'],
  [[0x52, 0x61, 0x72, 0x21, 0x1a, 0x07, 0x00], 'application/x-rar-compressed'],
  [[0x00, 0x61, 0x73, 0x6d], 'application/wasm'],
];

const WS = new Set([0x09, 0x0a, 0x0c, 0x0d, 0x20]);

function startsWithCaseless(b: Buffer, at: number, text: string): boolean {
  if (at + text.length > b.length) return false;
  for (let i = 0; i < text.length; i++) {
    const c = b[at + i];
    const up = c >= 0x61 && c <= 0x7a ? c - 0x20 : c;
    if (up !== text.charCodeAt(i)) return false;
  }
  return true;
}

export function sniffMimeType(body: Buffer): string | undefined {
  if (body.length === 0) return undefined;
  const b = body.subarray(0, 512);
  let at = 0;
  while (at < b.length && WS.has(b[at])) at++;
  for (const tag of HTML_TAGS) {
    // a tag name must be followed by space or '>' ("<!--" needs nothing)
    if (startsWithCaseless(b, at, tag)) {
      const next = b[at + tag.length];
      if (tag === '<!--' || next === 0x20 || next === 0x3e) return 'text/html; charset=utf-8';
    }
  }
  if (startsWithCaseless(b, at, '<?XML')) return 'text/xml; charset=utf-8';
  for (const [sig, type] of SIGNATURES) if (sig.every((v, i) => b[i] === v)) return type;
  if (b.length >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) return 'text/plain; charset=utf-8';
  if (b.length >= 2 && ((b[0] === 0xfe && b[1] === 0xff) || (b[0] === 0xff && b[1] === 0xfe))) return 'text/plain; charset=utf-16';
  for (const c of b) {
    // binary data bytes: control characters other than whitespace and ESC
    if (c <= 0x08 || c === 0x0b || (c >= 0x0e && c <= 0x1a) || (c >= 0x1c && c <= 0x1f)) return 'application/octet-stream';
  }
  return 'text/plain; charset=utf-8';
}

import { UsageError } from '../errors.js';
import { percentEncode } from '../lib/percent.js';
import { assertItemName } from '../store/item-rules.js';

// `entraclaw://SERVICE/ACCOUNT`: exactly two non-empty, percent-encoded parts. Only unreserved
// characters (A-Z a-z 0-9 - . _ ~) and ':' '@' '+' may appear raw; everything else — '/', quotes,
// brackets, spaces, non-ASCII — must be %-encoded. That narrow alphabet makes a reference's end
// unambiguous inside any text (shell quotes, JSON, `{{ }}`), so no quoting rules are needed. The
// scheme is case-sensitive on purpose: a reference is a machine-read token and exactness keeps
// `isReference` predictable.

/** The scheme prefix every reference starts with. */
export const REFERENCE_SCHEME = 'entraclaw://';

/**
 * A reference but for the slashes after its scheme (`entraclaw:/svc/me`, `entraclaw:svc/me`,
 * `entraclaw//svc/me`, in any case), as a whole value or tag: `run` and `inject` refuse it as they refuse a
 * scheme in capitals, since passed on as text it would stand where the secret should be. A value with
 * nothing that names an item after it (`entraclaw:/`) is not taken for one.
 */
export const MISTYPED_SCHEME = /^entraclaw(?::\/?|\/\/)[^\s/{}]+\/[^\s/{}]+$/i;

const RAW = 'A-Za-z0-9\\-._~:@+';
const SEGMENT = `(?:[${RAW}]|%[0-9A-Fa-f]{2})+`;
const WHOLE = new RegExp(`^${REFERENCE_SCHEME}${SEGMENT}/${SEGMENT}$`);
const RAW_CHAR = new RegExp(`^[${RAW}]$`);
// A candidate is the longest run of characters a reference could contain; parseReference then
// rejects it loudly if it is malformed, instead of silently skipping a typo.
const CANDIDATE = new RegExp(`${REFERENCE_SCHEME}[${RAW}%/]*`, 'g');

/** The item a reference names. */
export interface Reference {
  service: string;
  account: string;
}

/** A reference found inside a larger text, with its position (UTF-16 offsets, end exclusive). */
export interface ReferenceMatch {
  reference: Reference;
  text: string;
  start: number;
  end: number;
}

/** Whether a whole value (e.g. an environment variable's) is exactly one well-formed reference. */
export function isReference(value: string): boolean {
  return WHOLE.test(value);
}

// A malformed reference is described, never quoted: what was typed may be the secret itself, pasted
// where the item's name belongs (`TOKEN=entraclaw://ghp_...`). `where` says where to look instead.
const NOT_SHOWN = '(its text is not shown: a mistyped reference may hold a secret)';

/**
 * Parses `entraclaw://SERVICE/ACCOUNT`; `where` (a variable name, or `file:line`) prefixes every error
 * so the user can find the bad reference.
 */
export function parseReference(text: string, where?: string): Reference {
  const at = where ? `${where}: ` : '';
  if (!text.startsWith(REFERENCE_SCHEME)) {
    // The text is not echoed: a value that is not a reference may be a secret.
    throw new UsageError(
      `${at}not an ${REFERENCE_SCHEME} reference`,
      `write ${REFERENCE_SCHEME}SERVICE/ACCOUNT`,
    );
  }
  const segments = text.slice(REFERENCE_SCHEME.length).split('/');
  if (segments.length !== 2 || segments.some((s) => s.length === 0)) {
    const parts = segments.length === 1 ? 'one part' : `${segments.length} parts`;
    const empty = segments.some((s) => s.length === 0) ? ', an empty one among them' : '';
    throw new UsageError(
      `${at}the reference has ${parts}${empty}; it must have exactly two non-empty parts: ${REFERENCE_SCHEME}SERVICE/ACCOUNT ${NOT_SHOWN}`,
      segments.length === 1
        ? `name the item, e.g. ${REFERENCE_SCHEME}github.com/me; the secret itself goes into a store with \`entraclaw secret set\``
        : 'percent-encode a "/" inside a name as %2F',
    );
  }
  if (!WHOLE.test(text)) {
    throw new UsageError(
      `${at}the reference has ${badCharacter(text)} ${NOT_SHOWN}`,
      'only A-Z a-z 0-9 - . _ ~ : @ + may appear raw; encode the rest, e.g. a space as %20',
    );
  }
  const [service, account] = segments as [string, string];
  return {
    service: decodePart(service, 'service', at),
    account: decodePart(account, 'account', at),
  };
}

/** Finds every reference in `text`, in order; one that starts like a reference but is malformed throws. */
export function findReferences(text: string, where?: string): ReferenceMatch[] {
  return [...text.matchAll(CANDIDATE)].map((m) => ({
    reference: parseReference(m[0], where),
    text: m[0],
    start: m.index,
    end: m.index + m[0].length,
  }));
}

/** The canonical spelling of a reference, which `parseReference` reads back unchanged. */
export function formatReference(ref: Reference): string {
  return `${REFERENCE_SCHEME}${percentEncode(ref.service)}/${percentEncode(ref.account)}`;
}

function decodePart(segment: string, field: 'service' | 'account', at: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(segment);
  } catch {
    throw new UsageError(
      `${at}the reference's ${field} has a % escape that is not valid UTF-8 ${NOT_SHOWN}`,
      'percent-encode the UTF-8 bytes',
    );
  }
  try {
    assertItemName(decoded, field);
  } catch (err) {
    throw new UsageError(
      `${at}in the reference, ${(err as Error).message} ${NOT_SHOWN}`,
      (err as { hint?: string }).hint ?? 'name the item as `entraclaw secret ls` shows it, percent-encoded',
    );
  }
  return decoded;
}

// The first character of a reference that breaks the alphabet, by position and kind (one character alone
// gives nothing away), and what to write instead.
function badCharacter(text: string): string {
  const chars = [...text];
  for (let i = REFERENCE_SCHEME.length; i < chars.length; i++) {
    const c = chars[i]!;
    const at = `at character ${i + 1}`;
    if (c === '%') {
      if (!/^%[0-9A-Fa-f]{2}$/.test(chars.slice(i, i + 3).join(''))) {
        return `a % not followed by two hex digits ${at} (a malformed escape; a literal % is %25)`;
      }
      i += 2;
    } else if (c !== '/' && !RAW_CHAR.test(c)) {
      const code = c.codePointAt(0)!;
      const hex = code.toString(16).toUpperCase().padStart(2, '0');
      const name =
        c === ' '
          ? 'a space'
          : code < 0x20 || code === 0x7f
            ? 'a control character'
            : code < 0x80
              ? `the character ${c === "'" ? `"'"` : `'${c}'`}`
              : `U+${hex.padStart(4, '0')}`;
      return `${name} ${at}, which must be percent-encoded${code < 0x80 ? ` (%${hex})` : ' (as its UTF-8 bytes)'}`;
    }
  }
  return 'a character that must be percent-encoded, or a malformed % escape';
}

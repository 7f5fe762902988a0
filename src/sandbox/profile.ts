import { readFileSync } from 'node:fs';
import { UsageError } from '../errors.js';
import { tomlSyntaxError } from '../lib/toml-error.js';
import type { Grant, GrantOperation } from '../policy/grant.js';

// A sandbox profile. Its `[credential_access]` table mirrors the nono broker's profile section
// (services, service_prefixes, accounts with an explicit "*", operations read/create/update/upsert/delete/status),
// so a profile written for one reads naturally in the other. `provider` and `classes` are accepted for that
// compatibility; Entraclaw serves whatever store the user selected and treats generic and internet
// passwords alike. Several grants are written as `[[credential_access]]` tables. Differences from nono:
// `upsert` grants create and update (Entraclaw decides which a write is by whether the item exists), and
// `services = ["*"]` means every service, as in policy.toml.

/** A parsed sandbox profile. */
export interface SandboxProfile {
  grants: Grant[];
  /** Extra paths the sandboxed command may write. */
  allowPaths: string[];
  /** Extra paths it may read. */
  readPaths: string[];
  /** Whether the command keeps the network (default true: agents call APIs). */
  network: boolean;
}

const NONO_OPS: Record<string, GrantOperation[]> = {
  read: ['read'],
  list: ['list'],
  create: ['create'],
  update: ['update'],
  upsert: ['create', 'update'],
  write: ['create', 'update'],
  delete: ['delete'],
  // nono's `status` is `security show-keychain-info`, which the shim answers itself: it needs no grant.
  status: [],
};

/** Parses profile TOML text; unknown keys and bad values are UsageErrors naming the field. */
export async function parseProfile(text: string, source: string): Promise<SandboxProfile> {
  const [{ parse }, { z }, { nameProblem }, { ANY }] = await Promise.all([
    import('smol-toml'),
    import('zod'),
    import('../policy/schema.js'),
    import('../policy/grant.js'),
  ]);
  // The same name rules as the stores and policy.toml (non-empty, <= 256 bytes, no NUL or newline).
  const name = z.string().superRefine((s, ctx) => {
    const problem = nameProblem(s);
    if (problem) ctx.addIssue({ code: 'custom', message: `"${s}" ${problem}` });
  });
  const access = z
    .strictObject({
      // nono knows one provider; any other word there (a typo) would be served here as if it meant it.
      provider: z
        .enum(['macos-keychain', 'macos_keychain'], {
          message:
            'the only provider is "macos-keychain" (the broker serves the --store store): write that or leave it out',
        })
        .optional(),
      // nono's `classes = []` grants nothing; here classes are ignored, so an empty list would grant everything.
      classes: z
        .array(z.enum(['generic-password', 'internet-password', 'generic_password', 'internet_password']))
        .min(1, 'list the classes (["generic-password"]) or leave classes out')
        .optional(),
      services: z.array(name).default([]),
      service_prefixes: z
        .array(name.refine((p) => p !== ANY, 'write services = ["*"] for every service'))
        .default([]),
      accounts: z.array(name).min(1, 'list the accounts, or ["*"] for every account'),
      operations: z
        .array(z.enum(Object.keys(NONO_OPS) as [string, ...string[]]))
        .min(1, 'list at least one operation'),
    })
    .refine((a) => a.services.length > 0 || a.service_prefixes.length > 0, {
      message: 'needs services or service_prefixes',
    });
  const schema = z.strictObject({
    sandbox: z
      .strictObject({
        allow_paths: z.array(z.string().min(1)).default([]),
        read_paths: z.array(z.string().min(1)).default([]),
        network: z.boolean().default(true),
      })
      .default({ allow_paths: [], read_paths: [], network: true }),
    // One `[credential_access]` table, or several `[[credential_access]]` grants.
    credential_access: z.union([access, z.array(access)]).optional(),
  });
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (err) {
    if (looksLikeJson(text)) {
      throw new UsageError(
        `profile ${source} is JSON (a nono profile?): an Entraclaw profile is TOML`,
        'write each credential_access entry as a [[credential_access]] table with the same keys, e.g. ' +
          '[[credential_access]] services = ["name"] accounts = ["*"] operations = ["read"] ' +
          '(docs/sandbox.md, "Side by side with nono")',
        { cause: err },
      );
    }
    throw tomlSyntaxError('profile ', source, err);
  }
  const r = schema.safeParse(raw);
  if (!r.success) {
    const { issueAt } = await import('../policy/toml-lines.js');
    throw new UsageError(
      `profile ${issueAt(source, text, deepestIssue(r.error.issues))}`,
      'see docs/sandbox.md for the profile format',
    );
  }
  const ca = r.data.credential_access;
  const grants: Grant[] = (ca === undefined ? [] : Array.isArray(ca) ? ca : [ca])
    .map(
      (a): Grant => ({
        services: a.services,
        servicePrefixes: a.service_prefixes,
        accounts: a.accounts,
        operations: [...new Set(a.operations.flatMap((o) => NONO_OPS[o]!))],
        source: 'profile',
      }),
    )
    .filter((g) => g.operations.length > 0);
  return {
    grants,
    allowPaths: r.data.sandbox.allow_paths,
    readPaths: r.data.sandbox.read_paths,
    network: r.data.sandbox.network,
  };
}

// A nono profile is a JSON object; no TOML document starts with `{`, so this cannot misread a TOML typo.
function looksLikeJson(text: string): boolean {
  return /^\s*\{/.test(text);
}

type Issue = {
  code: string;
  path: PropertyKey[];
  message: string;
  keys?: string[];
  errors?: Issue[][];
};

// A union's "invalid_union" hides the useful issue: report the leaf issue that got furthest into the
// document, preferring a specific complaint over a branch's "expected array/object".
function deepestIssue(issues: readonly unknown[]): Issue & { keys: string[] } {
  const leaves: Issue[] = [];
  const visit = (issue: Issue, prefix: PropertyKey[]) => {
    const path = [...prefix, ...issue.path];
    if (issue.code === 'invalid_union' && issue.errors?.length) {
      for (const branch of issue.errors) for (const inner of branch) visit(inner, path);
    } else {
      leaves.push({ ...issue, path });
    }
  };
  for (const i of issues as Issue[]) visit(i, []);
  const rank = (i: Issue) => i.path.length * 2 + (i.code === 'invalid_type' ? 0 : 1);
  const best = leaves.reduce((a, b) => (rank(b) > rank(a) ? b : a));
  return { ...best, keys: best.keys ?? [] };
}

/** Reads and parses a profile file. */
export async function loadProfile(path: string): Promise<SandboxProfile> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(
      `cannot read profile ${path}: ${(err as NodeJS.ErrnoException).code}`,
      'give --profile an existing file',
    );
  }
  return parseProfile(text, path);
}

import { describe, expect, it } from 'vitest';
import type { ItemProps } from '../../../src/store/secret-service/api.js';
import {
  defaultLabel,
  itemAttributes,
  itemMeta,
  preferredItem,
  SCHEMA,
} from '../../../src/store/secret-service/attributes.js';

const props = (attributes: Record<string, string>, extra: Partial<ItemProps> = {}): ItemProps => ({
  label: '',
  attributes,
  created: 1_800_000_000,
  modified: 1_800_000_060,
  ...extra,
});

describe('secret-service item attributes', () => {
  it('writes the lookup pair, our schema and kind, and optional metadata only when set', () => {
    expect(itemAttributes({ service: 's', account: 'a', value: Buffer.alloc(0) })).toEqual({
      service: 's',
      account: 'a',
      username: 'a',
      'xdg:schema': SCHEMA,
      'entraclaw.kind': 'password',
    });
    expect(
      itemAttributes({
        service: 's',
        account: 'a',
        value: Buffer.alloc(0),
        kind: 'token',
        expiresAt: 'E',
        scope: 'S',
      }),
    ).toMatchObject({ 'entraclaw.kind': 'token', 'entraclaw.expires_at': 'E', 'entraclaw.scope': 'S' });
  });

  it("keeps another tool's attributes on update but drops our stale ones", () => {
    const existing = {
      service: 's',
      account: 'a',
      'xdg:schema': 'org.other',
      'entraclaw.scope': 'old',
      app: 'x',
    };
    expect(itemAttributes({ service: 's', account: 'a', value: Buffer.alloc(0) }, existing)).toEqual({
      service: 's',
      account: 'a',
      username: 'a',
      app: 'x',
      'xdg:schema': SCHEMA,
      'entraclaw.kind': 'password',
    });
  });

  it("writes username (Python keyring's and keyring-rs's name for the account), keeping another tool's", () => {
    const input = { service: 's', account: 'a', value: Buffer.alloc(0) };
    expect(itemAttributes(input, { service: 's', username: 'a' })).toMatchObject({
      account: 'a',
      username: 'a',
    });
    expect(itemAttributes(input, { service: 's', account: 'a', username: 'u' })).toMatchObject({
      account: 'a',
      username: 'u',
    });
  });

  it('reads metadata back, treating foreign or unknown kinds as password', () => {
    const meta = itemMeta(
      props(
        {
          service: 's',
          account: 'a',
          'entraclaw.kind': 'key',
          'entraclaw.expires_at': 'E',
          'entraclaw.scope': 'S',
        },
        { label: 'L' },
      ),
    );
    expect(meta).toEqual({
      service: 's',
      account: 'a',
      kind: 'key',
      label: 'L',
      createdAt: '2027-01-15T08:00:00.000Z',
      updatedAt: '2027-01-15T08:01:00.000Z',
      expiresAt: 'E',
      scope: 'S',
    });
    expect(itemMeta(props({ service: 's', account: 'a', 'entraclaw.kind': 'root' }))?.kind).toBe('password');
    expect(itemMeta(props({ service: 's', account: 'a' }))).not.toHaveProperty('label');
    expect(itemMeta(props({ service: 's' }))).toBeUndefined();
  });

  it('prefers our item over a foreign duplicate, then the newest', () => {
    const foreignNew = { path: 'f', props: props({}, { modified: 3 }) };
    const oursOld = { path: 'o1', props: props({ 'xdg:schema': SCHEMA }, { modified: 1 }) };
    const oursNew = { path: 'o2', props: props({ 'xdg:schema': SCHEMA }, { modified: 2 }) };
    expect(preferredItem([foreignNew, oursOld, oursNew])?.path).toBe('o2');
    expect(preferredItem([foreignNew, { path: 'f0', props: props({}, { modified: 0 }) }])?.path).toBe('f');
    expect(preferredItem([])).toBeUndefined();
  });

  it('breaks a tie of the same second the same way whatever order a search returned (created, then path)', () => {
    const at = (path: string, created = 5) => ({ path, props: props({}, { modified: 7, created }) });
    const items = [at('/c/login/9'), at('/c/login/12'), at('/c/login/10')];
    for (const order of [items, [...items].reverse(), [items[1]!, items[0]!, items[2]!]]) {
      expect(preferredItem(order)?.path).toBe('/c/login/12');
    }
    expect(preferredItem([at('/c/login/12', 4), at('/c/login/9', 6)])?.path).toBe('/c/login/9');
  });

  it('labels items after their pair by default', () => {
    expect(defaultLabel('github', 'me')).toBe('entraclaw: github/me');
  });
});

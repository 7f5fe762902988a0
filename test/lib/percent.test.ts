import { describe, expect, it } from 'vitest';
import { grantSpecFor, itemGrantSpec, itemName, percentEncode } from '../../src/lib/percent.js';
import { parseGrantSpec } from '../../src/policy/edit.js';

describe('grant specs for what was asked', () => {
  it('percent-encodes everything but letters, digits and -_.~', () => {
    expect(percentEncode("a/b *%'!()é")).toBe('a%2Fb%20%2A%25%27%21%28%29%C3%A9');
  });

  it('names the item, the service, or nothing (a list of everything)', () => {
    expect(grantSpecFor({ service: 'bot/x', account: 'me' })).toBe(itemGrantSpec('bot/x', 'me'));
    expect(grantSpecFor({ service: 'bot/x' })).toBe('bot%2Fx');
    expect(grantSpecFor({})).toBeUndefined();
  });

  it('names nothing for a service or account that is only "*": no grant covers it alone', () => {
    expect(grantSpecFor({ service: '*', account: 'me' })).toBeUndefined();
    expect(grantSpecFor({ service: 'svc', account: '*' })).toBeUndefined();
    expect(grantSpecFor({ service: '*' })).toBeUndefined();
    expect(grantSpecFor({ service: '**', account: 'a*' })).toBe('%2A%2A/a%2A');
  });

  it('parses back to exactly the service and account asked for', () => {
    const item = parseGrantSpec(grantSpecFor({ service: 'a/b*', account: 'c d' })!, { ops: 'read' });
    expect([item.services, item.accounts]).toEqual([['a/b*'], ['c d']]);
    const service = parseGrantSpec(grantSpecFor({ service: 'a/b*' })!, { ops: 'read' });
    expect([service.services, service.servicePrefixes, service.accounts]).toEqual([['a/b*'], [], ['*']]);
  });
});

describe('itemName (how messages name an item)', () => {
  it('keeps ordinary names as typed and encodes only the % and / inside a name', () => {
    expect(itemName('github.com', 'me')).toBe('github.com/me');
    expect(itemName('Ünïcode svc', 'a b')).toBe('Ünïcode svc/a b');
    expect(itemName('my/svc', 'a/b')).toBe('my%2Fsvc/a%2Fb');
    expect(itemName('100%', '%2F')).toBe('100%25/%252F');
  });
});

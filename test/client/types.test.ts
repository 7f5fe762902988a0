// What an application written in strict TypeScript sees of the SDK (checked by tsc, as
// `npx tsc -p tsconfig.test.json` runs it over the tests): a BrokerError's code is the protocol's set, so a
// switch over it is checked and a misspelt code does not compile, and whoami's grants have their shape.
import { describe, expectTypeOf, it } from 'vitest';
import type {
  BrokerError,
  BrokerErrorCode,
  Client,
  Grant,
  ItemKind,
  ItemMeta,
  WhoAmI,
} from '../../src/client/index.js';

describe('the SDK types', () => {
  it("types a BrokerError's code as the protocol's error codes", () => {
    expectTypeOf<BrokerError['code']>().toEqualTypeOf<
      | 'denied'
      | 'pending'
      | 'not_found'
      | 'expired'
      | 'locked'
      | 'unavailable'
      | 'bad_request'
      | 'too_large'
      | 'internal'
    >();
    expectTypeOf<BrokerErrorCode>().toEqualTypeOf<BrokerError['code']>();
    expectTypeOf<BrokerError['pendingId']>().toEqualTypeOf<string | undefined>();
  });

  it("types whoami's grants, and the item types a client returns, by name", () => {
    expectTypeOf<WhoAmI['grants']>().toEqualTypeOf<Grant[]>();
    expectTypeOf<Grant['operations']>().toEqualTypeOf<
      Array<'read' | 'list' | 'create' | 'update' | 'delete' | 'write'>
    >();
    expectTypeOf<Grant['confirmFor']>().toEqualTypeOf<string | undefined>();
    expectTypeOf<ReturnType<Client['get']>>().toEqualTypeOf<Promise<Buffer>>();
    expectTypeOf<ReturnType<Client['list']>>().toEqualTypeOf<Promise<ItemMeta[]>>();
    expectTypeOf<ItemMeta['kind']>().toEqualTypeOf<ItemKind>();
  });
});

import { NotFoundException } from '@nestjs/common';
import { getDataSourceToken } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { IdpEventMap, IdpEvents, uuidv7 } from '@idp/core';
import { Client, ClientsService } from '@idp/clients';
import { LibTestingModule, libTestingModule } from '../../../test/support/testing-module';
import { Consent } from './consent.entity';
import { ConsentModule } from './consent.module';
import { ConsentService } from './consent.service';

/**
 * Remembered consents: what a user allowed a client, the OpenID Connect scopes under '' and each
 * API's scopes under its identifier, so that a scope name two APIs share is never allowed for the
 * one the user did not see. First-party clients need none. A real ConsentModule on SQLite in
 * memory, or on PostgreSQL with TEST_DATABASE_URL (where concurrent grants lock the row).
 */

const ORDERS = 'https://api.example.com/orders';
const REPORTS = 'https://api.example.com/reports';

describe('ConsentService', () => {
  let lib: LibTestingModule;
  let consents: ConsentService;
  let thirdParty: Client;
  let otherClient: Client;
  let firstParty: Client;
  const granted: IdpEventMap['consent.granted'][] = [];
  const revoked: IdpEventMap['consent.revoked'][] = [];

  beforeAll(async () => {
    lib = await libTestingModule([ConsentModule]);
    consents = lib.moduleRef.get(ConsentService);
    const clients = lib.moduleRef.get(ClientsService);
    const client = async (name: string, first_party = false) => (await clients.register({ client_name: name, redirect_uris: [`https://${name}.example.com/cb`], first_party })).client;
    thirdParty = await client('third');
    otherClient = await client('other');
    firstParty = await client('first', true);
    const events = lib.moduleRef.get(IdpEvents);
    events.on('consent.granted', (e) => void granted.push(e));
    events.on('consent.revoked', (e) => void revoked.push(e));
  });
  afterAll(() => lib?.close());

  const newUser = () => uuidv7();
  const rows = (userId: string) => lib.moduleRef.get<DataSource>(getDataSourceToken()).getRepository(Consent).find({ where: { user_id: userId } });

  describe('missingScopes', () => {
    it('is every requested scope before any consent, and none for a first-party client', async () => {
      const userId = newUser();
      expect(await consents.missingScopes({ userId, client: thirdParty, scopes: ['openid', 'profile'] })).toEqual(['openid', 'profile']);
      expect(await consents.missingScopes({ userId, client: firstParty, scopes: ['openid', 'profile', 'read:orders'], audience: ORDERS })).toEqual([]);
      expect(await consents.missingScopes({ userId, client: firstParty, scopes: ['openid'] }, null)).toEqual([]);
    });

    it('is what the consent does not cover, in the order requested', async () => {
      const userId = newUser();
      await consents.grant({ userId, client: thirdParty, scopes: ['openid', 'email'] });
      expect(await consents.missingScopes({ userId, client: thirdParty, scopes: ['openid', 'email'] })).toEqual([]);
      expect(await consents.missingScopes({ userId, client: thirdParty, scopes: ['profile', 'openid', 'offline_access', 'email'] })).toEqual(['profile', 'offline_access']);
      expect(await consents.missingScopes({ userId, client: thirdParty, scopes: ['email'] })).toEqual([]);
    });

    it("covers one user and one client: not another user's request, nor another client's", async () => {
      const userId = newUser();
      await consents.grant({ userId, client: thirdParty, scopes: ['openid', 'profile'] });
      expect(await consents.missingScopes({ userId: newUser(), client: thirdParty, scopes: ['openid', 'profile'] })).toEqual(['openid', 'profile']);
      expect(await consents.missingScopes({ userId, client: otherClient, scopes: ['openid', 'profile'] })).toEqual(['openid', 'profile']);
    });

    it("keeps each API's scopes apart: a scope name allowed for one API is not allowed for another, nor without an audience", async () => {
      const userId = newUser();
      await consents.grant({ userId, client: thirdParty, scopes: ['openid', 'read'], audience: ORDERS });
      expect(await consents.missingScopes({ userId, client: thirdParty, scopes: ['openid', 'read'], audience: ORDERS })).toEqual([]);
      expect(await consents.missingScopes({ userId, client: thirdParty, scopes: ['openid', 'read'], audience: REPORTS })).toEqual(['read']);
      expect(await consents.missingScopes({ userId, client: thirdParty, scopes: ['openid', 'read'] })).toEqual(['read']);
    });

    it('keeps the OpenID Connect scopes under no audience, whatever the API they were allowed with', async () => {
      const userId = newUser();
      await consents.grant({ userId, client: thirdParty, scopes: ['openid', 'profile', 'email', 'offline_access', 'write'], audience: ORDERS });
      expect((await consents.find(userId, thirdParty.client_id))!.scopes).toEqual({ '': ['openid', 'profile', 'email', 'offline_access'], [ORDERS]: ['write'] });
      expect(await consents.missingScopes({ userId, client: thirdParty, scopes: ['openid', 'profile', 'email', 'offline_access'], audience: REPORTS })).toEqual([]);
      expect(await consents.missingScopes({ userId, client: thirdParty, scopes: ['openid', 'profile'] })).toEqual([]);
    });

    it('judges by the consent it is given instead of reading one (null: none)', async () => {
      const userId = newUser();
      await consents.grant({ userId, client: thirdParty, scopes: ['openid', 'profile'] });
      expect(await consents.missingScopes({ userId, client: thirdParty, scopes: ['openid', 'profile'] }, null)).toEqual(['openid', 'profile']);
      const given = { scopes: { '': ['openid', 'profile', 'email'] } } as unknown as Consent;
      expect(await consents.missingScopes({ userId, client: thirdParty, scopes: ['openid', 'email'] }, given)).toEqual([]);
    });
  });

  describe('grant', () => {
    it('adds to what was allowed before, once each, in one row per user and client', async () => {
      const userId = newUser();
      const first = await consents.grant({ userId, client: thirdParty, scopes: ['openid', 'profile'] });
      const second = await consents.grant({ userId, client: thirdParty, scopes: ['profile', 'email', 'read'], audience: ORDERS });
      expect(second.id).toBe(first.id);
      expect(second.scopes).toEqual({ '': ['openid', 'profile', 'email'], [ORDERS]: ['read'] });
      expect(second.updated_at.getTime()).toBeGreaterThanOrEqual(first.granted_at.getTime());
      const stored = await rows(userId);
      expect(stored).toHaveLength(1);
      expect(stored[0]).toMatchObject({ id: first.id, client_id: thirdParty.client_id, scopes: second.scopes });
      expect(stored[0].granted_at.getTime()).toBe(first.granted_at.getTime());
    });

    it('announces each grant with what was asked, once committed', async () => {
      const userId = newUser();
      const before = granted.length;
      await consents.grant({ userId, client: thirdParty, scopes: ['openid', 'read'], audience: ORDERS });
      expect(granted.slice(before)).toEqual([{ userId, clientId: thirdParty.client_id, scopes: ['openid', 'read'], audience: ORDERS }]);
    });

    it('merges concurrent grants for one user and client: no scope is lost, one row', async () => {
      const userId = newUser();
      const scopeSets = [['openid'], ['profile'], ['email'], ['offline_access'], ['a'], ['b'], ['c'], ['d']];
      await Promise.all(scopeSets.map((scopes, i) => consents.grant({ userId, client: thirdParty, scopes, audience: i >= 4 ? ORDERS : undefined })));
      const stored = await rows(userId);
      expect(stored).toHaveLength(1);
      expect([...stored[0].scopes[''] ?? []].sort()).toEqual(['email', 'offline_access', 'openid', 'profile']);
      expect([...stored[0].scopes[ORDERS] ?? []].sort()).toEqual(['a', 'b', 'c', 'd']);
      expect(await consents.missingScopes({ userId, client: thirdParty, scopes: ['openid', 'profile', 'email', 'offline_access', 'a', 'b', 'c', 'd'], audience: ORDERS })).toEqual([]);
    });
  });

  describe('listing and revoking', () => {
    it("lists a user's consents by id (uuidv7: by the millisecond of creation), and no one else's", async () => {
      const userId = newUser();
      await consents.grant({ userId: newUser(), client: thirdParty, scopes: ['openid'] });
      const a = await consents.grant({ userId, client: thirdParty, scopes: ['openid'] });
      const b = await consents.grant({ userId, client: otherClient, scopes: ['profile'] });
      const expected = [[a.id, thirdParty.client_id], [b.id, otherClient.client_id]].sort(([x], [y]) => (x < y ? -1 : 1));
      expect((await consents.listForUser(userId)).map((c) => [c.id, c.client_id])).toEqual(expected);
    });

    it('deletes the consent: its scopes must be allowed again', async () => {
      const userId = newUser();
      const consent = await consents.grant({ userId, client: thirdParty, scopes: ['openid', 'profile'] });
      await consents.grant({ userId, client: otherClient, scopes: ['openid'] });
      const before = revoked.length;
      expect((await consents.revoke(userId, consent.id, 'admin-1')).id).toBe(consent.id);
      expect(revoked.slice(before)).toEqual([{ userId, clientId: thirdParty.client_id, actor: 'admin-1' }]);
      expect(await consents.find(userId, thirdParty.client_id)).toBeNull();
      expect(await consents.missingScopes({ userId, client: thirdParty, scopes: ['openid', 'profile'] })).toEqual(['openid', 'profile']);
      // The user's other consent stays.
      expect(await consents.missingScopes({ userId, client: otherClient, scopes: ['openid'] })).toEqual([]);
    });

    it("refuses to revoke another user's consent, an unknown id, or an id too long to be one, with 404", async () => {
      const owner = newUser();
      const consent = await consents.grant({ userId: owner, client: thirdParty, scopes: ['openid'] });
      const before = revoked.length;
      for (const [userId, id] of [[newUser(), consent.id], [owner, uuidv7()], [owner, `${consent.id}x`]]) {
        await expect(consents.revoke(userId, id)).rejects.toBeInstanceOf(NotFoundException);
      }
      expect(revoked.length).toBe(before);
      expect(await consents.missingScopes({ userId: owner, client: thirdParty, scopes: ['openid'] })).toEqual([]);
    });
  });
});

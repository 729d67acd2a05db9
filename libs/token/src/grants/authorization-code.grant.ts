import { Injectable } from '@nestjs/common';
import { Clock, IdpEvents, RequestContext, invalidGrant, invalidRequest } from '@idp/core';
import type { Client } from '@idp/clients';
import { AuthorizationCode, AuthorizationService, verifyPkce } from '@idp/authorization';
import { ResourcesService } from '@idp/resources';
import { UserStore } from '@idp/users';
import { GrantHandler, TokenRequest, TokenResponse } from '../grant-handler';
import { RevocationService } from '../revocation.service';
import { UsedUp, UserTokens } from './user-tokens';

/** RFC 6749 §4.1.3 / OIDC Core §3.1.3: trade a code for tokens. */
@GrantHandler({ name: 'authorization_code' })
@Injectable()
export class AuthorizationCodeGrant implements GrantHandler {
  constructor(
    private readonly authorization: AuthorizationService,
    private readonly users: UserStore,
    private readonly resources: ResourcesService,
    private readonly revocation: RevocationService,
    private readonly tokens: UserTokens,
    private readonly events: IdpEvents,
    private readonly clock: Clock,
  ) {}

  async handle(req: TokenRequest, client: Client, ctx?: RequestContext): Promise<TokenResponse> {
    if (!req.code) throw invalidRequest('code is required');
    if (!req.redirect_uri) throw invalidRequest('redirect_uri is required');
    const code = await this.authorization.findCode(req.code);
    if (!code) throw invalidGrant('the code is invalid, expired or already used');
    if (code.used_at) return this.replayed(code, ctx);
    // A failed check uses the code up, as a redemption would.
    const refuse = async (description: string, hint?: string): Promise<never> => {
      await this.authorization.burnCode(code.code_hash);
      throw invalidGrant(description, hint);
    };
    if (code.client_id !== client.client_id) return refuse('the code is invalid, expired or already used', 'code issued to another client');
    if (code.expires_at.getTime() < this.clock.now()) return refuse('the code is invalid, expired or already used', 'code expired');
    if (code.redirect_uri !== req.redirect_uri) return refuse('redirect_uri does not match the authorization request');
    // RFC 7636 §4.6; and a verifier without a challenge is refused (RFC 9700 §2.1.1, PKCE downgrade).
    if (code.code_challenge) {
      if (!req.code_verifier || !verifyPkce(code.code_challenge, req.code_verifier)) return refuse('code_verifier does not match the code_challenge');
    } else if (req.code_verifier !== undefined) {
      return refuse('code_verifier sent for a code issued without code_challenge');
    }
    const user = await this.users.findById(code.user_id);
    if (!user || user.blocked) return refuse('the user is not allowed to sign in');
    const api = code.audience ? await this.resources.findByIdentifier(code.audience) : null;
    if (code.audience && !api) return refuse('the API of this code no longer exists');

    // The code is marked used in the transaction that adds the tokens: both, or neither.
    try {
      return await this.tokens.issue(
        { client, user, scopes: code.scopes, api, authTime: code.auth_time, sid: code.sid, amr: code.amr.split(' '), nonce: code.nonce, grantType: 'authorization_code', codeHash: code.code_hash },
        req,
        ctx,
        (m, access) => this.authorization.consumeCode(m, code.code_hash, access),
      );
    } catch (err) {
      if (!(err instanceof UsedUp)) throw err;
      // Another redemption won (read the code again for the tokens it recorded), or the code expired
      // or went meanwhile: the database decided, whatever the first read said.
      const now = await this.authorization.findCode(req.code);
      if (now && !now.used_at) throw invalidGrant('the code is invalid, expired or already used');
      return this.replayed(now ?? code, ctx);
    }
  }

  /** RFC 6749 §4.1.2: a code used twice is refused, and the tokens issued from it are revoked. */
  private async replayed(code: AuthorizationCode, ctx: RequestContext | undefined): Promise<never> {
    await this.revocation.revokeForCode(code.code_hash, { jti: code.access_jti, exp: code.access_exp });
    await this.events.emit('code.replayed', { clientId: code.client_id, userId: code.user_id }, ctx);
    throw invalidGrant('the code is invalid, expired or already used');
  }
}

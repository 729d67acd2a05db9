import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import type { Request } from 'express';
import { OAuthError, PageRedirect } from '@idp/core';
import { Interactions, now } from './interactions';
import { LoginPolicies } from './login-policy';
import { UserStore } from '@idp/users';
import { ClientsService } from '@idp/clients';
import type { Interaction, SessionUser } from './session.types';

/** What the authorization request asks of the login, attached by the request guard before SessionGuard runs. */
export interface LoginCheck {
  params: Record<string, string>;
  clientId: string;
  prompt: string[];
  maxAge?: number;
  /** `sub` of a valid id_token_hint. */
  idTokenHintSub?: string;
  /** Set when the request is a resumed interaction. */
  interaction?: Interaction;
}

export type RequestWithLogin = Request & { loginCheck?: LoginCheck; user?: SessionUser };

/**
 * The Passport login guard in front of /authorize (OIDC Core §3.1.2.3): passes with a valid
 * session that satisfies `prompt` and `max_age`; otherwise `login_required` for prompt=none, or
 * the pending request is saved as an interaction and the browser goes to the login page.
 */
@Injectable()
export class SessionGuard implements CanActivate {
  constructor(private readonly policies: LoginPolicies, private readonly users: UserStore, private readonly clients: ClientsService) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const req = ctx.switchToHttp().getRequest<RequestWithLogin>();
    const check = req.loginCheck;
    if (!check) throw new Error('SessionGuard needs the authorization request guard before it');
    const user = req.isAuthenticated?.() ? req.user : undefined;
    const freshLogin = !!(user && check.interaction?.login_at && user.auth_time >= check.interaction.created_at);
    let reason: string | undefined;
    if (!user) reason = 'no session';
    else if (!freshLogin && check.prompt.includes('login')) reason = 'prompt=login';
    else if (!freshLogin && check.maxAge !== undefined && now() - user.auth_time > check.maxAge) reason = 'max_age exceeded';
    else if (check.idTokenHintSub && check.idTokenHintSub !== user.sub) reason = 'id_token_hint names another user';
    if (!reason) {
      // An existing session is also subject to the login policies (office hours end, an account
      // gets flagged): a refusal goes back to the application as access_denied.
      if (this.policies.size && user) {
        const found = await this.users.findById(user.sub);
        if (found) {
          const decision = await this.policies.evaluate({ user: found, client: await this.clients.find(check.clientId), ip: req.ip, stage: 'session' });
          if (!decision.allow) throw new OAuthError('access_denied', decision.reason, 403, true, 'login policy');
        }
      }
      return true;
    }
    if (check.prompt.includes('none')) {
      throw new OAuthError('login_required', 'the user must sign in', 400, true, reason);
    }
    const interaction = check.interaction ?? Interactions.create(req, check.params, check.clientId);
    throw new PageRedirect(`/login?interaction=${encodeURIComponent(interaction.id)}`);
  }
}

/** The signed-in user of this request, if any. */
export function currentSessionUser(req: Request): SessionUser | undefined {
  return req.isAuthenticated?.() ? (req.user as SessionUser) : undefined;
}

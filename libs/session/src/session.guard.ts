import { ExecutionContext, Injectable } from '@nestjs/common';
import { AuthGuard } from '@nestjs/passport';
import type { FastifyRequest as Request } from 'fastify';
import { Clock, OAuthError, PageRedirect } from '@idp/core';
import { Interactions } from './interactions';
import { LoginPolicies } from './login-policy';
import { UserStore } from '@idp/users';
import { ClientsService } from '@idp/clients';
import { SESSION_STRATEGY, storedSessionUser } from './session.strategy';
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
 * Whether a signed-in user satisfies an authorization request without signing in again (OIDC
 * Core §3.1.2.3): `prompt=login` and `max_age`, an `id_token_hint` naming this user, and the login
 * policies (office hours end, an account gets flagged), whose refusal goes back to the application
 * as access_denied.
 */
@Injectable()
export class LoginRequirement {
  constructor(private readonly policies: LoginPolicies, private readonly users: UserStore, private readonly clients: ClientsService, private readonly clock: Clock) {}

  /** Why the user must sign in (again), or undefined when the session will do; throws access_denied for a policy's refusal. */
  async check(user: SessionUser | undefined, check: LoginCheck, ip: string | undefined): Promise<string | undefined> {
    // A sign-in made for this very request satisfies it (its `sid` is recorded on the interaction).
    const freshLogin = !!(user && check.interaction?.login_sid && check.interaction.login_sid === user.sid);
    if (!user) return 'no session';
    if (!freshLogin && check.prompt.includes('login')) return 'prompt=login';
    if (!freshLogin && check.maxAge !== undefined && this.clock.nowSeconds() - user.auth_time > check.maxAge) return 'max_age exceeded';
    if (check.idTokenHintSub && check.idTokenHintSub !== user.sub) return 'id_token_hint names another user';
    if (this.policies.size) {
      const found = await this.users.findById(user.sub);
      if (found) {
        const decision = await this.policies.evaluate({ user: found, client: await this.clients.find(check.clientId), ip, stage: 'session' });
        if (!decision.allow) throw new OAuthError('access_denied', decision.reason, 403, true, 'login policy');
      }
    }
    return undefined;
  }
}

/**
 * The Passport login guard in front of every /authorize (OIDC Core §3.1.2.3): AuthGuard over the
 * session strategy. It passes with a valid session that satisfies `prompt` and `max_age`
 * (LoginRequirement), and sets `request.user`; otherwise `login_required` for prompt=none, or the
 * pending request is saved as an interaction and the browser goes to the login page.
 */
@Injectable()
export class SessionGuard extends AuthGuard(SESSION_STRATEGY) {
  constructor(private readonly requirement: LoginRequirement) {
    super();
  }

  // AuthGuard awaits what this returns (and sets it as `request.user`).
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  handleRequest(err: unknown, user: SessionUser | false, _info: unknown, ctx: ExecutionContext): any {
    if (err) throw err;
    return this.decide(user || undefined, ctx.switchToHttp().getRequest<RequestWithLogin>());
  }

  private async decide(user: SessionUser | undefined, req: RequestWithLogin): Promise<SessionUser> {
    const check = req.loginCheck;
    if (!check) throw new Error('SessionGuard needs the authorization request guard before it');
    const reason = await this.requirement.check(user, check, req.ip);
    if (!reason) return user!;
    if (check.prompt.includes('none')) {
      throw new OAuthError('login_required', 'the user must sign in', 400, true, reason);
    }
    const interaction = check.interaction ?? Interactions.create(req, check.params, check.clientId);
    throw new PageRedirect(`/login?interaction=${encodeURIComponent(interaction.id)}`);
  }
}

/**
 * The signed-in user of this request: the one a guard authenticated (SessionGuard, LocalLoginGuard),
 * else the one the session records.
 */
export function currentSessionUser(req: Request): SessionUser | undefined {
  return (req.user as SessionUser | undefined)?.sub ? (req.user as SessionUser) : storedSessionUser(req);
}

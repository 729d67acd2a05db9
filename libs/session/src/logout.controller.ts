import { All, Controller, Req, Res, UseFilters } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { FastifyReply as Response, FastifyRequest as Request } from 'fastify';
import { IdpEvents, OAuthError, PageErrorFilter, renderPage, safeEqual, RequestContext } from '@idp/core';
import { ClientsService } from '@idp/clients';
import { KeysService } from '@idp/keys';
import { csrfToken } from './csrf';
import { currentSessionUser } from './session.guard';

const PARAMS = ['id_token_hint', 'client_id', 'post_logout_redirect_uri', 'state', 'logout_hint', 'ui_locales'];

/**
 * OpenID Connect RP-Initiated Logout 1.0 at /oidc/logout (GET or POST). With a valid
 * `id_token_hint` for the signed-in user the session ends at once; without one the user confirms
 * on a page first (a third party must not be able to sign users out with a link). Afterwards the
 * browser goes to a registered `post_logout_redirect_uri` (with `state`), or sees a signed-out page.
 */
@ApiExcludeController()
@Controller('oidc/logout')
@UseFilters(PageErrorFilter)
export class LogoutController {
  constructor(private readonly keys: KeysService, private readonly clients: ClientsService, private readonly events: IdpEvents) {}

  @All()
  async logout(@Req() req: Request, @Res() res: Response): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'POST') throw new OAuthError('invalid_request', 'Use GET or POST.', 405, false);
    const source = (req.method === 'POST' ? req.body : req.query) as Record<string, unknown>;
    const p: Record<string, string | undefined> = {};
    for (const name of PARAMS) {
      const v = source?.[name];
      if (Array.isArray(v)) throw new OAuthError('invalid_request', `The parameter ${name} was given more than once.`, 400, false);
      if (v !== undefined && (typeof v !== 'string' || v.length > 4096)) throw new OAuthError('invalid_request', `The parameter ${name} is not valid.`, 400, false);
      p[name] = v === '' ? undefined : (v as string | undefined);
    }

    let hint: { sub?: string; aud?: string | string[] } | undefined;
    if (p.id_token_hint) {
      try {
        hint = await this.keys.verifySignatureOnly(p.id_token_hint);
      } catch {
        throw new OAuthError('invalid_request', 'The id_token_hint is not an ID token issued here.', 400, false);
      }
    }
    const hintAud = hint ? (Array.isArray(hint.aud) ? hint.aud[0] : hint.aud) : undefined;
    if (p.client_id && hintAud && p.client_id !== hintAud) throw new OAuthError('invalid_request', 'client_id does not match the id_token_hint.', 400, false);
    const clientId = p.client_id ?? hintAud;

    let redirect: string | undefined;
    if (p.post_logout_redirect_uri) {
      const client = clientId ? await this.clients.find(clientId) : null;
      // Exact match against the client's registered list; never redirect to an unregistered URI.
      if (!client || !client.post_logout_redirect_uris.includes(p.post_logout_redirect_uri)) {
        throw new OAuthError('invalid_request', 'The post_logout_redirect_uri is not registered for this application.', 400, false);
      }
      const url = new URL(p.post_logout_redirect_uri);
      if (p.state) url.searchParams.set('state', p.state);
      redirect = url.toString();
    }

    const user = currentSessionUser(req);
    const body = (req.method === 'POST' ? req.body ?? {} : {}) as Record<string, unknown>;
    const confirmed = typeof body.confirm === 'string' && typeof body._csrf === 'string' && !!req.session?.csrf && safeEqual(body._csrf, req.session.csrf);
    const hintMatches = !!(user && hint?.sub === user.sub);
    if (user && !hintMatches && !confirmed) {
      renderPage(res, 'logout', { csrf: csrfToken(req), params: Object.entries(p).filter(([k, v]) => v !== undefined && k !== 'id_token_hint') });
      return;
    }
    if (user) {
      await endSession(req);
      await this.events.emit('user.logout', { userId: user.sub, clientId }, RequestContext.of(req));
    }
    res.header('Cache-Control', 'no-store');
    if (redirect) return void res.redirect(redirect, 303);
    renderPage(res, 'logged-out', {});
  }
}

async function endSession(req: Request): Promise<void> {
  await req.session.destroy();
}

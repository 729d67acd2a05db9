import { CanActivate, ExecutionContext, Injectable, createParamDecorator } from '@nestjs/common';
import type { FastifyRequest as Request } from 'fastify';
import { OAuthError, invalidRequest, invalidScope, urlPath } from '@idp/core';
import { Client, ClientsService, SCOPE_TOKEN } from '@idp/clients';
import { KeysService } from '@idp/keys';
import { Api, ResourcesService } from '@idp/resources';
import { ClaimsService } from '@idp/users';
import { Interactions, type Interaction, type LoginCheck } from '@idp/session';
import { S256_CHALLENGE } from './pkce';
import { RESPONSE_MODES, type ResponseMode, type ResponseTarget } from './authorize-response';

/** The scopes of OpenID Connect this server supports (claims from the users lib). */
export const OIDC_SCOPES = ['openid', 'profile', 'email', 'offline_access'];
const PROMPTS = ['none', 'login', 'consent', 'select_account'];
const MAX_PARAM = 2048;

/** A validated authorization request. */
export interface AuthorizeRequest {
  client: Client;
  redirectUri: string;
  responseMode: ResponseMode;
  state?: string;
  scopes: string[];
  api?: Api;
  nonce?: string;
  codeChallenge?: string;
  prompt: string[];
  maxAge?: number;
  loginHint?: string;
  idTokenHintSub?: string;
  /** The parameters as received, saved in an interaction and replayed on resume. */
  params: Record<string, string>;
  interaction?: Interaction;
}

/** Where errors may go, known once client_id and redirect_uri are verified. */
export interface AuthorizeTarget extends ResponseTarget {
  state?: string;
  interactionId?: string;
}

export type AuthorizeHttpRequest = Request & { authorizeRequest?: AuthorizeRequest; authorizeTarget?: AuthorizeTarget; loginCheck?: LoginCheck };

/** A non-redirectable error: shown on the error page (the redirect target is not trusted). */
const pageError = (description: string, hint?: string) => new OAuthError('invalid_request', description, 400, false, hint);

/**
 * Validates /authorize in two stages (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.2): first the client
 * and the exact redirect URI, whose failures never redirect; then everything else, whose failures
 * go back to the client (to `onTarget`'s target, known once the first stage passed). Used by the
 * guard below and by the lean /authorize path.
 */
@Injectable()
export class AuthorizeRequestValidator {
  constructor(
    private readonly clients: ClientsService,
    private readonly resources: ResourcesService,
    private readonly keys: KeysService,
    private readonly claims: ClaimsService,
  ) {}

  async validate(source: Record<string, unknown>, interaction: Interaction | undefined, onTarget: (target: AuthorizeTarget) => void = () => undefined): Promise<AuthorizeRequest> {
    // Stage 1: client and redirect URI. Nothing redirects until both are verified.
    const clientId = source.client_id;
    if (typeof clientId !== 'string' || !clientId) throw pageError(Array.isArray(clientId) ? 'client_id was given more than once.' : 'The request has no client_id.');
    const client = clientId.length <= 128 ? await this.clients.find(clientId) : null;
    if (!client) throw pageError('The application (client_id) is not registered here.');
    const redirectUri = source.redirect_uri;
    if (typeof redirectUri !== 'string' || !redirectUri) throw pageError(Array.isArray(redirectUri) ? 'redirect_uri was given more than once.' : 'The request has no redirect_uri.');
    // Exact, character-for-character match (RFC 9700 §4.1.3): no prefix, no wildcard, no normalization.
    if (!client.redirect_uris.includes(redirectUri)) throw pageError('The redirect_uri is not registered for this application.');
    const state = typeof source.state === 'string' ? source.state : undefined;
    // The response mode asked for carries every answer, errors included; an unsupported (or
    // repeated) one is itself an error, which goes back in the default mode, the query.
    const responseMode: ResponseMode = source.response_mode === 'form_post' ? 'form_post' : 'query';
    onTarget({ redirectUri, responseMode, state: state && state.length <= MAX_PARAM ? state : undefined, interactionId: interaction?.id });

    // Stage 2: everything else goes back to the client.
    const params: Record<string, string> = {};
    for (const [name, value] of Object.entries(source)) {
      if (Array.isArray(value)) throw invalidRequest(`the parameter ${/^[a-z_]{1,40}$/.test(name) ? name : '(unnamed)'} was given more than once`);
      if (typeof value !== 'string') continue;
      if (value.length > MAX_PARAM && name !== 'id_token_hint') throw invalidRequest(`the parameter ${/^[a-z_]{1,40}$/.test(name) ? name : '(unnamed)'} is too long`);
      params[name] = value;
    }
    if (params.request !== undefined) throw new OAuthError('request_not_supported', 'request objects are not supported');
    if (params.request_uri !== undefined) throw new OAuthError('request_uri_not_supported', 'request_uri is not supported');
    if (!params.response_type) throw invalidRequest('response_type is required');
    if (params.response_type !== 'code') throw new OAuthError('unsupported_response_type', 'only response_type=code is supported');
    if (params.response_mode !== undefined && !(RESPONSE_MODES as readonly string[]).includes(params.response_mode)) throw invalidRequest('response_mode must be query or form_post');
    if (!client.grant_types.includes('authorization_code')) throw new OAuthError('unauthorized_client', 'the client may not use the authorization code flow');

    // PKCE (RFC 7636, RFC 9700 §2.1.1): S256 only; required for public clients.
    const challenge = params.code_challenge;
    const method = params.code_challenge_method;
    if (challenge === undefined && method !== undefined) throw invalidRequest('code_challenge_method without code_challenge');
    if (challenge !== undefined) {
      if (method !== 'S256') throw invalidRequest('code_challenge_method must be S256 (plain is not allowed)');
      if (!S256_CHALLENGE.test(challenge)) throw invalidRequest('code_challenge is not a valid S256 challenge');
    } else if (client.isPublic) {
      throw invalidRequest('PKCE (code_challenge with S256) is required for public clients');
    }

    const prompt = params.prompt ? params.prompt.split(' ').filter(Boolean) : [];
    if (prompt.some((p) => !PROMPTS.includes(p))) throw invalidRequest('prompt has an unsupported value');
    if (prompt.includes('none') && prompt.length > 1) throw invalidRequest('prompt=none cannot be combined with other values');
    let maxAge: number | undefined;
    if (params.max_age !== undefined) {
      if (!/^\d{1,9}$/.test(params.max_age)) throw invalidRequest('max_age must be a whole number of seconds');
      maxAge = Number(params.max_age);
    }
    let idTokenHintSub: string | undefined;
    if (params.id_token_hint !== undefined) {
      try {
        const claims = await this.keys.verifySignatureOnly(params.id_token_hint);
        if (typeof claims.sub !== 'string') throw new Error('no sub');
        idTokenHintSub = claims.sub;
      } catch {
        throw invalidRequest('id_token_hint is not an ID token issued by this server');
      }
    }

    const api = await this.audience(params);
    const scopes = this.scopes(params.scope, client, api);

    return {
      client, redirectUri, responseMode, state, scopes, api, nonce: params.nonce, codeChallenge: challenge, prompt, maxAge,
      loginHint: params.login_hint, idTokenHintSub, params, interaction,
    };
  }

  /** `audience` (Auth0) or `resource` (RFC 8707): a registered API, never the admin API. */
  private async audience(params: Record<string, string>): Promise<Api | undefined> {
    const { audience, resource } = params;
    if (audience !== undefined && resource !== undefined && audience !== resource) throw invalidRequest('audience and resource name different APIs');
    const target = audience ?? resource;
    if (!target) return undefined;
    const api = await this.resources.findByIdentifier(target);
    if (!api) throw new OAuthError('invalid_target', 'the requested audience is not a registered API');
    if (api.is_system) throw new OAuthError('invalid_target', 'the admin API accepts client_credentials tokens only');
    return api;
  }

  /**
   * The scopes this request may get: OpenID Connect scopes, the scopes of the claims providers
   * (an extension's `@ClaimsProvider({ name: 'department' })`) and the API's own; anything else is
   * dropped (as Auth0 does). offline_access needs the refresh_token grant and an API allowing it.
   */
  private scopes(raw: string | undefined, client: Client, api?: Api): string[] {
    const requested = (raw ?? '').split(' ').filter(Boolean);
    if (requested.length === 0) throw invalidScope('scope is required (for example: openid profile email)');
    if (requested.some((s) => !SCOPE_TOKEN.test(s))) throw invalidScope('scope is malformed');
    const allowedByClient = client.scope ? new Set(client.scope.split(' ')) : undefined;
    const result = [...new Set(requested)].filter((s) => {
      if (allowedByClient && !allowedByClient.has(s) && s !== 'openid') return false;
      if (s === 'offline_access') return client.grant_types.includes('refresh_token') && (!api || api.allow_offline_access);
      if (OIDC_SCOPES.includes(s) || this.claims.scopes.includes(s)) return true;
      return !!api?.scopes.some((a) => a.value === s);
    });
    if (result.length === 0) throw invalidScope('none of the requested scopes is available to this client');
    return result;
  }
}

/** What the request asks of the login (SessionGuard, LoginRequirement). */
export function loginCheckOf(ar: AuthorizeRequest): LoginCheck {
  return { params: ar.params, clientId: ar.client.client_id, prompt: ar.prompt, maxAge: ar.maxAge, idTokenHintSub: ar.idTokenHintSub, interaction: ar.interaction };
}

/**
 * The authorization request's guard, before SessionGuard, so nothing unvalidated reaches the
 * login: the parameters of the query, the form (POST) or the resumed interaction, validated.
 */
@Injectable()
export class AuthorizeRequestGuard implements CanActivate {
  constructor(private readonly validator: AuthorizeRequestValidator) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const req = ctx.switchToHttp().getRequest<AuthorizeHttpRequest>();
    let interaction: Interaction | undefined;
    let source: Record<string, unknown>;
    if (urlPath(req.url).toLowerCase().replace(/\/+$/, '').endsWith('/resume')) {
      interaction = Interactions.get(req, (req.query as Record<string, unknown>).interaction);
      if (!interaction) throw pageError('This sign-in request has expired. Go back to the application and try again.');
      source = interaction.params;
    } else if (req.method === 'POST') {
      if (!/^application\/x-www-form-urlencoded\s*(;|$)/i.test(String(req.headers['content-type'] ?? ''))) throw pageError('The authorization request must be sent as a form.');
      source = (req.body ?? {}) as Record<string, unknown>;
    } else {
      source = req.query as Record<string, unknown>;
    }
    const ar = await this.validator.validate(source, interaction, (target) => (req.authorizeTarget = target));
    req.authorizeRequest = ar;
    req.loginCheck = loginCheckOf(ar);
    return true;
  }
}

/** The validated request, in the controller. */
export const CurrentAuthorizeRequest = createParamDecorator((_: unknown, ctx: ExecutionContext): AuthorizeRequest => {
  return ctx.switchToHttp().getRequest<AuthorizeHttpRequest>().authorizeRequest!;
});

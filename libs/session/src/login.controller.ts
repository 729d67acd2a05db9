import { Body, Controller, Get, Post, Query, Req, Res, UseFilters, UseGuards } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { FastifyReply as Response, FastifyRequest as Request } from 'fastify';
import { IdpEvents, PageErrorFilter, renderPage, RequestContext } from '@idp/core';
import { ClientsService } from '@idp/clients';
import { CsrfGuard, csrfToken } from './csrf';
import { LocalLoginGuard, type LoginRequest } from './guards';
import { Interactions, now } from './interactions';
import { LoginAttempt, LoginAttemptRequest, typedIdentifier } from './local.strategy';

const GENERIC_FAILURE = 'Wrong email or password.';

/** The login page (CONTRACT §3): a form with `username` and `password`; CSRF and interaction are hidden fields. */
@ApiExcludeController()
@Controller('login')
@UseFilters(PageErrorFilter)
export class LoginController {
  constructor(private readonly clients: ClientsService, private readonly events: IdpEvents) {}

  @Get()
  async page(@Query('interaction') id: unknown, @Req() req: Request, @Res() res: Response): Promise<void> {
    const interaction = Interactions.get(req, id);
    if (!interaction) return expired(res);
    await this.render(req, res, interaction.id, { username: interaction.params.login_hint ?? '' });
  }

  @Post()
  @UseGuards(CsrfGuard, LocalLoginGuard)
  async submit(@Body() body: Record<string, unknown>, @Req() req: Request, @Res() res: Response): Promise<void> {
    const interaction = Interactions.get(req, body.interaction);
    if (!interaction) return expired(res);
    const locked = (req as LoginRequest).loginLocked;
    // Set when the password was checked and the check failed (LocalStrategy).
    const attempt = (req as LoginAttemptRequest).loginAttempt;
    if (locked) {
      // A wrong password that reached the lock is a failed sign-in like any other; an attempt
      // refused without a check (already locked) is not recorded, as at the token endpoint.
      if (attempt) await this.failed(req, interaction.client_id, body.username, attempt);
      res.header('Retry-After', String(locked));
      const minutes = Math.max(1, Math.ceil(locked / 60));
      const username = typeof body.username === 'string' ? body.username.slice(0, 320) : '';
      return this.render(req, res, interaction.id, { username, error: `Too many failed sign-in attempts. Please wait ${minutes} minute${minutes > 1 ? 's' : ''} and try again.` }, 429);
    }
    const denied = (req as LoginRequest).loginDenied;
    if (denied) {
      const username = typeof body.username === 'string' ? body.username.slice(0, 320) : '';
      return this.render(req, res, interaction.id, { username, error: denied }, 403);
    }
    if (!(req as LoginRequest).loginOk) {
      // Without an attempt, passport-local refused the form before any check (an empty field).
      await this.failed(req, interaction.client_id, body.username, attempt ?? { reason: 'missing username or password' });
      const username = typeof body.username === 'string' ? body.username.slice(0, 320) : '';
      return this.render(req, res, interaction.id, { username, error: GENERIC_FAILURE }, 401);
    }
    await this.events.emit('user.login', { userId: (req.user as { sub: string }).sub, clientId: interaction.client_id, ip: req.ip }, RequestContext.of(req));
    Interactions.update(req, interaction.id, { login_at: now(), login_sid: (req.user as { sid: string }).sid });
    // Back to /authorize through the interaction id: never a URL taken from the form.
    res.redirect(`/authorize/resume?interaction=${encodeURIComponent(interaction.id)}`, 303);
  }

  /**
   * The audit event of a failed sign-in (CONTRACT §4): the account tried when it exists and the
   * identifier typed; never the password. The page says the same whatever the reason.
   */
  private failed(req: Request, clientId: string, username: unknown, attempt: LoginAttempt): Promise<void> {
    const { userId, reason } = attempt;
    return this.events.emit('user.login_failed', { ...(userId ? { userId } : {}), identifier: typedIdentifier(username), clientId, ip: req.ip, reason }, RequestContext.of(req));
  }

  private async render(req: Request, res: Response, interactionId: string, data: { username: string; error?: string }, status = 200): Promise<void> {
    const interaction = Interactions.get(req, interactionId)!;
    const client = await this.clients.find(interaction.client_id);
    renderPage(res, 'login', { ...data, interaction: interactionId, csrf: csrfToken(req), clientName: client?.client_name ?? client?.client_id ?? '' }, status);
  }
}

function expired(res: Response): void {
  renderPage(res, 'error', { title: 'Sign-in expired', message: 'This sign-in page has expired. Go back to the application and try again.' }, 400);
}

import { Body, Controller, Get, Post, Query, Req, Res, UseFilters, UseGuards } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { FastifyReply as Response, FastifyRequest as Request } from 'fastify';
import { IdpEvents, PageErrorFilter, renderPage, RequestContext } from '@idp/core';
import { ClientsService } from '@idp/clients';
import { ResourcesService } from '@idp/resources';
import { CsrfGuard, Interactions, csrfToken, currentSessionUser } from '@idp/session';
import type { Interaction } from '@idp/session';
import { ConsentService } from './consent.service';
import { OIDC_SCOPE_DESCRIPTIONS } from './scope-descriptions';

/** The consent page (CONTRACT §3): the requested scopes with their descriptions; buttons `decision` = allow | deny. */
@ApiExcludeController()
@Controller('consent')
@UseFilters(PageErrorFilter)
export class ConsentController {
  constructor(
    private readonly consents: ConsentService,
    private readonly clients: ClientsService,
    private readonly resources: ResourcesService,
    private readonly events: IdpEvents,
  ) {}

  @Get()
  async page(@Query('interaction') id: unknown, @Req() req: Request, @Res() res: Response): Promise<void> {
    const interaction = this.pending(req, id);
    if (!interaction) return expired(res);
    const client = await this.clients.find(interaction.client_id);
    if (!client) return expired(res);
    const api = interaction.consent!.audience ? await this.resources.findByIdentifier(interaction.consent!.audience) : null;
    const scopes = interaction.consent!.scopes.map((value) => ({
      value,
      description: OIDC_SCOPE_DESCRIPTIONS[value] ?? api?.scopes.find((s) => s.value === value)?.description ?? value,
    }));
    renderPage(res, 'consent', {
      csrf: csrfToken(req), interaction: interaction.id, clientName: client.client_name ?? client.client_id, apiName: api?.name, scopes,
    });
  }

  @Post()
  @UseGuards(CsrfGuard)
  async decide(@Body() body: Record<string, unknown>, @Req() req: Request, @Res() res: Response): Promise<void> {
    const interaction = this.pending(req, body.interaction);
    const user = currentSessionUser(req);
    if (!interaction || !user) return expired(res);
    const decision = body.decision === 'allow' ? 'allow' : body.decision === 'deny' ? 'deny' : undefined;
    if (!decision) {
      renderPage(res, 'error', { title: 'Choose allow or deny', message: 'Go back and choose whether to allow the application.' }, 400);
      return;
    }
    const client = await this.clients.find(interaction.client_id);
    if (!client) return expired(res);
    if (decision === 'allow') {
      await this.consents.grant({ userId: user.sub, client, scopes: interaction.consent!.scopes, audience: interaction.consent!.audience }, RequestContext.of(req));
    } else {
      await this.events.emit('consent.denied', { userId: user.sub, clientId: client.client_id }, RequestContext.of(req));
    }
    Interactions.update(req, interaction.id, { decision });
    res.redirect(`/authorize/resume?interaction=${encodeURIComponent(interaction.id)}`, 303);
  }

  private pending(req: Request, id: unknown): Interaction | undefined {
    const interaction = Interactions.get(req, id);
    return interaction?.consent ? interaction : undefined;
  }
}

function expired(res: Response): void {
  renderPage(res, 'error', { title: 'Request expired', message: 'This page has expired. Go back to the application and try again.' }, 400);
}

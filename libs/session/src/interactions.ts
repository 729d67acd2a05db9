import type { FastifyRequest as Request } from 'fastify';
import { randomToken } from '@idp/core';
import type { Interaction } from './session.types';

const MAX_INTERACTIONS = 10;
const INTERACTION_TTL_S = 3600;

/** Pending authorization requests of this browser session, by id (at most 10, at most 1 hour old). */
export const Interactions = {
  create(req: Request, params: Record<string, string>, clientId: string): Interaction {
    const all = prune(req.session.interactions ?? {});
    const interaction: Interaction = { id: randomToken(16), params, client_id: clientId, created_at: now() };
    all[interaction.id] = interaction;
    const ids = Object.keys(all).sort((a, b) => all[a].created_at - all[b].created_at);
    while (ids.length > MAX_INTERACTIONS) delete all[ids.shift()!];
    req.session.interactions = all;
    return interaction;
  },

  get(req: Request, id: unknown): Interaction | undefined {
    if (typeof id !== 'string' || !req.session?.interactions) return undefined;
    const i = req.session.interactions[id];
    if (!i || now() - i.created_at > INTERACTION_TTL_S) return undefined;
    return i;
  },

  update(req: Request, id: string, patch: Partial<Interaction>): void {
    const i = this.get(req, id);
    if (i) req.session.interactions![id] = { ...i, ...patch };
  },

  remove(req: Request, id: string): void {
    if (req.session?.interactions) delete req.session.interactions[id];
  },
};

function prune(all: Record<string, Interaction>): Record<string, Interaction> {
  const t = now();
  return Object.fromEntries(Object.entries(all).filter(([, i]) => t - i.created_at <= INTERACTION_TTL_S));
}

export function now(): number {
  return Math.floor(Date.now() / 1000);
}

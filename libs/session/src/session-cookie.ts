/** Browser sessions live 14 days of inactivity at most (the cookie is renewed on each use). */
export const SESSION_IDLE_MS = 14 * 24 * 3600 * 1000;

import { Injectable } from '@nestjs/common';
import { IdpEventMap, OnIdpEvent } from '@idp/core';

/**
 * Seam: event subscriber. Counts successful sign-ins (`user.login` is emitted after the session
 * is saved). Events are notifications: a listener cannot stop the sign-in, and if it throws, the
 * error is logged and the request carries on. To refuse a sign-in, write a login policy instead.
 *
 * The counters live in this process (reset at restart, per replica); a real one would write to
 * the company's metrics or audit system here.
 */
@Injectable()
export class LoginCounter {
  private total = 0;
  private readonly byUser = new Map<string, number>();

  @OnIdpEvent('user.login')
  onLogin(event: IdpEventMap['user.login']): void {
    this.total++;
    this.byUser.set(event.userId, (this.byUser.get(event.userId) ?? 0) + 1);
  }

  count(userId?: string): { total: number; user_id?: string; user_logins?: number } {
    return userId === undefined ? { total: this.total } : { total: this.total, user_id: userId, user_logins: this.byUser.get(userId) ?? 0 };
  }
}

import { MiddlewareConsumer, Module, NestModule } from '@nestjs/common';
import { PassportModule } from '@nestjs/passport';
import { TypeOrmModule, getRepositoryToken } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { IdpConfig } from '@idp/core';
import { UsersModule } from '@idp/users';
import { ClientsModule } from '@idp/clients';
import { KeysModule } from '@idp/keys';
import { SessionRecord } from './session.entity';
import { TypeOrmSessionStore } from './session.store';
import { SessionCookies } from './session-cookies';
import { LocalStrategy } from './local.strategy';
import { SessionStrategy } from './session.strategy';
import { SessionSerializer } from './session.serializer';
import { CsrfGuard } from './csrf';
import { LocalLoginGuard } from './guards';
import { LoginRequirement, SessionGuard } from './session.guard';
import { LoginController } from './login.controller';
import { LogoutController } from './logout.controller';
import { LoginPolicies } from './login-policy';

/**
 * Login, Passport, cookies and logout. Passport (@nestjs/passport) authenticates: passport-local
 * behind AuthGuard('local') on POST /login, and the session strategy behind SessionGuard on
 * /authorize, both without Passport's own session support; the IdP owns its session, whose
 * middleware runs only on the browser-facing routes (authorize, login, consent, logout), never on
 * the protocol endpoints or the admin API.
 */
@Module({
  imports: [PassportModule.register({ session: false }), TypeOrmModule.forFeature([SessionRecord]), UsersModule, ClientsModule, KeysModule],
  controllers: [LoginController, LogoutController],
  providers: [
    {
      provide: SessionCookies,
      inject: [IdpConfig, getRepositoryToken(SessionRecord)],
      useFactory: (config: IdpConfig, sessions: Repository<SessionRecord>) =>
        new SessionCookies(config.keyring.derive('cookie').toString('base64url'), new TypeOrmSessionStore(sessions), config.issuer.startsWith('https://')),
    },
    LocalStrategy, SessionStrategy, SessionSerializer, CsrfGuard, LocalLoginGuard, SessionGuard, LoginRequirement, LoginPolicies,
  ],
  exports: [SessionGuard, CsrfGuard, LoginPolicies, SessionSerializer, LoginRequirement],
})
export class SessionModule implements NestModule {
  constructor(private readonly cookies: SessionCookies) {}

  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(this.cookies.middleware()).forRoutes('authorize', 'authorize/*path', 'login', 'consent', 'oidc/logout');
  }

  onModuleDestroy(): void {
    this.cookies.store.close();
  }
}

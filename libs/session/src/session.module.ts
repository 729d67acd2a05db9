import { MiddlewareConsumer, Module, NestModule } from '@nestjs/common';
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
import { SessionSerializer } from './session.serializer';
import { CsrfGuard } from './csrf';
import { LocalLoginGuard } from './guards';
import { LoginRequirement, SessionGuard } from './session.guard';
import { LoginController } from './login.controller';
import { LogoutController } from './logout.controller';
import { IdpPassport } from './passport';
import { LoginPolicies } from './login-policy';

/**
 * Login, Passport, cookies and logout. The session middleware runs only on the browser-facing
 * routes (authorize, login, consent, logout), never on the token endpoint or the admin API.
 */
@Module({
  imports: [TypeOrmModule.forFeature([SessionRecord]), UsersModule, ClientsModule, KeysModule],
  controllers: [LoginController, LogoutController],
  providers: [
    { provide: IdpPassport, useFactory: () => new IdpPassport() },
    {
      provide: SessionCookies,
      inject: [IdpConfig, getRepositoryToken(SessionRecord)],
      useFactory: (config: IdpConfig, sessions: Repository<SessionRecord>) =>
        new SessionCookies(config.keyring.derive('cookie').toString('base64url'), new TypeOrmSessionStore(sessions), config.issuer.startsWith('https://')),
    },
    LocalStrategy, SessionSerializer, CsrfGuard, LocalLoginGuard, SessionGuard, LoginRequirement, LoginPolicies,
  ],
  exports: [SessionGuard, CsrfGuard, LoginPolicies, SessionCookies, SessionSerializer, LoginRequirement],
})
export class SessionModule implements NestModule {
  constructor(
    private readonly cookies: SessionCookies,
    private readonly passport: IdpPassport,
    // Instantiated here so that their registrations on this app's Passport exist before any request.
    _strategy: LocalStrategy,
    _serializer: SessionSerializer,
  ) {}

  configure(consumer: MiddlewareConsumer): void {
    consumer
      .apply(
        this.cookies.middleware(),
        this.passport.initialize(),
        this.passport.session(),
      )
      .forRoutes('authorize', 'authorize/*path', 'login', 'consent', 'oidc/logout');
  }

  onModuleDestroy(): void {
    this.cookies.store.close();
  }
}

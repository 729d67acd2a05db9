import { MiddlewareConsumer, Module, NestModule } from '@nestjs/common';
import { InjectRepository, TypeOrmModule } from '@nestjs/typeorm';
import session from 'express-session';
import { Repository } from 'typeorm';
import { IdpConfig } from '@idp/core';
import { UsersModule } from '@idp/users';
import { ClientsModule } from '@idp/clients';
import { KeysModule } from '@idp/keys';
import { SessionRecord } from './session.entity';
import { TypeOrmSessionStore } from './session.store';
import { LocalStrategy } from './local.strategy';
import { SessionSerializer } from './session.serializer';
import { CsrfGuard } from './csrf';
import { LocalLoginGuard } from './guards';
import { SessionGuard } from './session.guard';
import { LoginController } from './login.controller';
import { LogoutController } from './logout.controller';
import { IdpPassport } from './passport';
import { LoginPolicies } from './login-policy';

/** Browser sessions live 14 days of inactivity at most (the cookie is renewed on each use). */
const SESSION_IDLE_MS = 14 * 24 * 3600 * 1000;

/**
 * Login, Passport, cookies and logout. The session middleware runs only on the browser-facing
 * routes (authorize, login, consent, logout), never on the token endpoint or the admin API.
 */
@Module({
  imports: [TypeOrmModule.forFeature([SessionRecord]), UsersModule, ClientsModule, KeysModule],
  controllers: [LoginController, LogoutController],
  providers: [{ provide: IdpPassport, useFactory: () => new IdpPassport() }, LocalStrategy, SessionSerializer, CsrfGuard, LocalLoginGuard, SessionGuard, LoginPolicies],
  exports: [SessionGuard, CsrfGuard, LoginPolicies],
})
export class SessionModule implements NestModule {
  private store?: TypeOrmSessionStore;

  constructor(
    private readonly config: IdpConfig,
    @InjectRepository(SessionRecord) private readonly sessions: Repository<SessionRecord>,
    private readonly passport: IdpPassport,
    // Instantiated here so that their registrations on this app's Passport exist before any request.
    _strategy: LocalStrategy,
    _serializer: SessionSerializer,
  ) {}

  configure(consumer: MiddlewareConsumer): void {
    const https = this.config.issuer.startsWith('https://');
    this.store = new TypeOrmSessionStore(this.sessions);
    consumer
      .apply(
        session({
          // __Host- prefix on https: the cookie is Secure, host-only, and for path / (RFC 6265bis §4.1.3.2).
          name: https ? '__Host-idp_session' : 'idp_session',
          secret: this.config.keyring.derive('cookie').toString('base64url'),
          store: this.store,
          resave: false,
          saveUninitialized: false,
          rolling: true,
          cookie: { httpOnly: true, sameSite: 'lax', secure: https, path: '/', maxAge: SESSION_IDLE_MS },
        }),
        this.passport.initialize(),
        this.passport.session(),
      )
      .forRoutes('authorize', 'authorize/*path', 'login', 'consent', 'oidc/logout');
  }

  onModuleDestroy(): void {
    this.store?.close();
  }
}

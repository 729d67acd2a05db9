import { Module, OnModuleDestroy } from '@nestjs/common';
import { PassportModule } from '@nestjs/passport';
import { TypeOrmModule, getRepositoryToken } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { UsersModule } from '@idp/users';
import { ClientsModule } from '@idp/clients';
import { KeysModule } from '@idp/keys';
import { SessionRecord } from './session.entity';
import { TypeOrmSessionStore } from './session.store';
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
 * Login, Passport, the session store and logout. Passport (@nestjs/passport) authenticates:
 * passport-local behind AuthGuard('local') on POST /login, and the session strategy behind
 * SessionGuard on /authorize, both without Passport's own session support: the IdP owns its
 * session (@fastify/session with TypeOrmSessionStore, registered by the application's boot).
 */
@Module({
  imports: [PassportModule.register({ session: false }), TypeOrmModule.forFeature([SessionRecord]), UsersModule, ClientsModule, KeysModule],
  controllers: [LoginController, LogoutController],
  providers: [
    // The store of the browser sessions (@fastify/session, registered by the application's boot).
    { provide: TypeOrmSessionStore, inject: [getRepositoryToken(SessionRecord)], useFactory: (sessions: Repository<SessionRecord>) => new TypeOrmSessionStore(sessions) },
    LocalStrategy, SessionStrategy, SessionSerializer, CsrfGuard, LocalLoginGuard, SessionGuard, LoginRequirement, LoginPolicies,
  ],
  exports: [SessionGuard, CsrfGuard, LoginPolicies, SessionSerializer, LoginRequirement, TypeOrmSessionStore],
})
export class SessionModule implements OnModuleDestroy {
  constructor(private readonly store: TypeOrmSessionStore) {}

  onModuleDestroy(): void {
    this.store.close();
  }
}

import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ClientsModule } from '@idp/clients';
import { KeysModule } from '@idp/keys';
import { ResourcesModule } from '@idp/resources';
import { UsersModule } from '@idp/users';
import { AuthorizationModule } from '@idp/authorization';
import { GrantRegistry } from './grant-handler';
import { TokenIssuer } from './token-issuer';
import { TokenController } from './token.controller';
import { UserinfoController } from './userinfo.controller';
import { OAuthFormGuard } from './oauth-form.guard';
import { BearerGuard } from './bearer.guard';
import { RefreshToken } from './refresh-token.entity';
import { RevokedToken } from './revoked-token.entity';
import { RevocationService } from './revocation.service';
import { TokenIntrospection } from './token-introspection';
import { TokenCustomizers } from './token-customizer';
import { UserTokens } from './grants/user-tokens';
import { ClientCredentialsGrant } from './grants/client-credentials.grant';
import { AuthorizationCodeGrant } from './grants/authorization-code.grant';
import { RefreshTokenGrant } from './grants/refresh-token.grant';

@Module({
  imports: [TypeOrmModule.forFeature([RefreshToken, RevokedToken]), ClientsModule, KeysModule, ResourcesModule, UsersModule, AuthorizationModule],
  controllers: [TokenController, UserinfoController],
  providers: [
    GrantRegistry, TokenIssuer, TokenCustomizers, BearerGuard, OAuthFormGuard, RevocationService, TokenIntrospection, UserTokens,
    ClientCredentialsGrant, AuthorizationCodeGrant, RefreshTokenGrant,
  ],
  exports: [GrantRegistry, TokenIssuer, BearerGuard, RevocationService, KeysModule],
})
export class TokenModule {}
